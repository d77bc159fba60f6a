package adapt

import (
	"bytes"
	"context"
	"image"
	"image/jpeg"
	"image/png"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/conductor-edge/conductor/internal/shop"
)

func newImages(t testing.TB) *Images {
	im := &Images{}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := im.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	im.logger = zap.NewNop()
	return im
}

// A photo for the lite class is scaled to its width and gets smaller; the
// same photo for a WebP client is WebP.
func TestConvertPhoto(t *testing.T) {
	im := newImages(t)
	src := shop.Photo(1, 1600, 1067)
	for _, c := range []struct {
		class  Class
		format string
		ctype  string
		width  int
	}{{Lite, "jpeg", "image/jpeg", 800}, {Text, "webp", "image/webp", 320}, {Full, "jpeg", "image/jpeg", 1600}} {
		out, ctype, outcome := im.convert(context.Background(), src, c.class, c.format)
		if outcome != "converted" || ctype != c.ctype {
			t.Fatalf("%s/%s: %s %s", c.class, c.format, outcome, ctype)
		}
		cfg, _, err := image.DecodeConfig(bytes.NewReader(out))
		if err != nil || cfg.Width != c.width {
			t.Fatalf("%s: width %d (%v), want %d", c.class, cfg.Width, err, c.width)
		}
		t.Logf("%s/%s: %d → %d bytes", c.class, c.format, len(src), len(out))
	}
}

// An image that no conversion makes smaller is served as it came: a small
// JPEG already at low quality, which Go's encoder (with its full Huffman
// tables) can only make larger. What WebP does with it is checked too:
// smaller, or skipped.
func TestConvertNeverGrows(t *testing.T) {
	im := newImages(t)
	var b bytes.Buffer
	jpeg.Encode(&b, image.NewGray(image.Rect(0, 0, 16, 16)), &jpeg.Options{Quality: 10})
	if out, _, outcome := im.convert(context.Background(), b.Bytes(), Lite, "jpeg"); out != nil || outcome != "skipped_larger" {
		t.Fatalf("a %d-byte JPEG became %d bytes (%s)", b.Len(), len(out), outcome)
	}
	if out, _, outcome := im.convert(context.Background(), b.Bytes(), Lite, "webp"); out != nil && len(out) >= b.Len() {
		t.Fatalf("webp: a %d-byte JPEG became %d bytes (%s)", b.Len(), len(out), outcome)
	}
}

// Pixel bombs are refused from the header, before any decoding.
func TestConvertRefusesPixelBombs(t *testing.T) {
	im := newImages(t)
	im.MaxPixels = 1000
	if out, _, outcome := im.convert(context.Background(), shop.Photo(1, 64, 64), Lite, "jpeg"); out != nil || outcome != "skipped_limit" {
		t.Fatalf("a 4096-pixel image over a 1000-pixel limit: %s", outcome)
	}
}

func FuzzConvert(f *testing.F) {
	f.Add(shop.Photo(3, 40, 30), uint8(1), true)
	var b bytes.Buffer
	png.Encode(&b, image.NewNRGBA(image.Rect(0, 0, 8, 8)))
	f.Add(b.Bytes(), uint8(0), false)
	f.Add([]byte("RIFF\x00\x00\x00\x00WEBPVP8 "), uint8(2), true)
	im := newImages(f)
	im.MaxPixels = 1 << 20
	f.Fuzz(func(t *testing.T, src []byte, class uint8, webp bool) {
		c := []Class{Full, Lite, Text}[class%3]
		format := "jpeg"
		if webp {
			format = "webp"
		}
		out, _, outcome := im.convert(context.Background(), src, c, format)
		if out != nil && len(out) >= len(src) {
			t.Fatalf("%s: %d bytes became %d", outcome, len(src), len(out))
		}
	})
}
