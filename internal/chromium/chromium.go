// Package chromium runs headless Chromium for tests of the pages people
// look at: the front-end's substitute pages and the manager's status page.
package chromium

import (
	"context"
	"image"
	"os/exec"
	"testing"
	"time"
)

// Find returns the browser, or skips the test with why.
func Find(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no headless Chromium (.ci/run installs Debian's chromium)")
	return ""
}

// Run runs it headless with args and returns its standard output. A
// browser that crashes (Chromium sometimes does on a machine starved of
// CPU) is given a second and third try with a fresh profile.
func Run(t testing.TB, bin string, args ...string) []byte {
	t.Helper()
	var err error
	for try := 0; try < 3; try++ {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--user-data-dir=" + t.TempDir()}
		var out []byte
		out, err = exec.CommandContext(ctx, bin, append(base, args...)...).Output()
		cancel()
		if err == nil {
			return out
		}
		t.Logf("chromium %v: %v (try %d)", args, err, try+1)
	}
	t.Fatalf("chromium %v: %v", args, err)
	return nil
}

// DistinctColors counts the colors of a sample of an image's pixels: a
// blank or failed render has a handful.
func DistinctColors(img image.Image) int {
	seen := map[uint32]bool{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 3 {
		for x := b.Min.X; x < b.Max.X; x += 3 {
			r, g, bl, _ := img.At(x, y).RGBA()
			seen[(r>>8)<<16|(g>>8)<<8|bl>>8] = true
		}
	}
	return len(seen)
}
