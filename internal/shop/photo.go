package shop

import (
	"bytes"
	"image"
	"image/color"
	"image/jpeg"
	"math"
	"math/rand/v2"
)

// Photo is a product photo: width×height pixels of smooth shapes and fine
// grain, as a camera's JPEG at quality 90. The demo has no real photos to
// ship, and a flat colour would make every image converter look better
// than it is: the grain is what costs bytes in a real photo.
func Photo(id, width, height int) []byte {
	img := image.NewRGBA(image.Rect(0, 0, width, height))
	rng := rand.New(rand.NewPCG(uint64(id), 7))
	fx, fy := 2+float64(id%5), 3+float64(id%3)
	for y := 0; y < height; y++ {
		for x := 0; x < width; x++ {
			u, v := float64(x)/float64(width), float64(y)/float64(height)
			base := 0.5 + 0.25*math.Sin(fx*math.Pi*u+float64(id)) + 0.25*math.Cos(fy*math.Pi*v)
			n := rng.Float64()*0.12 - 0.06
			c := func(k float64) uint8 { return uint8(math.Max(0, math.Min(255, 255*(k+n)))) }
			img.SetRGBA(x, y, color.RGBA{c(base), c(0.3 + 0.5*v*base), c(1 - base*0.8), 255})
		}
	}
	var b bytes.Buffer
	jpeg.Encode(&b, img, &jpeg.Options{Quality: 90})
	return b.Bytes()
}
