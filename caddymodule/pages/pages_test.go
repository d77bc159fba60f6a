package pages

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func chromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no headless Chromium (.ci/run installs Debian's chromium)")
	return ""
}

func runChromium(t *testing.T, bin string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--user-data-dir=" + t.TempDir()}
	out, err := exec.CommandContext(ctx, bin, append(base, args...)...).Output()
	if err != nil {
		t.Fatalf("chromium %v: %v", args, err)
	}
	return out
}

// pageServer answers "/" with the page the first time and with the real
// content afterwards, as the origin would once it is back; it counts the
// requests for "/".
func pageServer(t *testing.T, name string, d Data) (*httptest.Server, *atomic.Int64) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		if n.Add(1) == 1 {
			if err := Write(w, r, name, nil, http.StatusServiceUnavailable, d); err != nil {
				t.Error(err)
			}
			return
		}
		fmt.Fprint(w, "<html><body><h1 id=arrived>The real page arrived</h1></body></html>")
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

// TestPagesRenderInChromiumAndRefreshThemselves: each page is real HTML
// that a browser renders (a screenshot with content, not a blank) and that
// reaches the real page on its own.
func TestPagesRenderInChromiumAndRefreshThemselves(t *testing.T) {
	bin := chromium(t)
	shots := os.Getenv("CONDUCTOR_SCREENSHOTS") // keep them, to look at
	for _, name := range []string{Wait, Apology, Slow, Queue} {
		t.Run(name, func(t *testing.T) {
			d := Data{Site: "Demo Shop", RefreshSeconds: 1, LoadPercent: 130, Position: 17, WaitKnown: true, WaitText: WaitText(3 * time.Minute)}
			srv, _ := pageServer(t, name, d)
			shot := filepath.Join(t.TempDir(), name+".png")
			if shots != "" {
				shot = filepath.Join(shots, name+".png")
			}
			runChromium(t, bin, "--window-size=1024,768", "--screenshot="+shot, srv.URL+"/")
			b, err := os.ReadFile(shot)
			if err != nil {
				t.Fatal(err)
			}
			img, err := png.Decode(bytes.NewReader(b))
			if err != nil {
				t.Fatalf("screenshot is not a PNG: %v", err)
			}
			if colors := distinctColors(img); colors < 50 {
				t.Fatalf("screenshot has %d colors: the page did not render", colors)
			}

			srv2, n := pageServer(t, name, d)
			dom := runChromium(t, bin, "--virtual-time-budget=15000", "--dump-dom", srv2.URL+"/")
			if !strings.Contains(string(dom), "The real page arrived") || n.Load() < 2 {
				t.Fatalf("the page did not refresh itself: %d requests, DOM %.300s", n.Load(), dom)
			}
		})
	}
}

func distinctColors(img image.Image) int {
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

func TestWriteSetsRetryAfterAndMarksTheSubstitute(t *testing.T) {
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	if err := Write(rec, req, Wait, nil, 503, Data{Site: "<Shop>", RefreshSeconds: 7}); err != nil {
		t.Fatal(err)
	}
	if rec.Code != 503 || rec.Header().Get("Retry-After") != "7" || rec.Header().Get("Conductor-Substitute") != Wait ||
		!strings.Contains(rec.Body.String(), "&lt;Shop&gt;") || !strings.Contains(rec.Body.String(), `content="7"`) {
		t.Fatalf("%d %v %s", rec.Code, rec.Header(), rec.Body.String())
	}
}
