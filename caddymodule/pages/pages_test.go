package pages

import (
	"bytes"
	"fmt"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/conductor-edge/conductor/internal/chromium"
)

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
	bin := chromium.Find(t)
	shots := os.Getenv("CONDUCTOR_SCREENSHOTS") // keep them, to look at
	for _, name := range []string{Wait, Apology, Slow, Queue} {
		t.Run(name, func(t *testing.T) {
			d := Data{Site: "Demo Shop", RefreshSeconds: 1, LoadPercent: 130, Position: 17, WaitKnown: true, WaitText: WaitText(3 * time.Minute)}
			srv, _ := pageServer(t, name, d)
			shot := filepath.Join(t.TempDir(), name+".png")
			if shots != "" {
				shot = filepath.Join(shots, name+".png")
			}
			chromium.Run(t, bin, "--window-size=1024,768", "--screenshot="+shot, srv.URL+"/")
			b, err := os.ReadFile(shot)
			if err != nil {
				t.Fatal(err)
			}
			img, err := png.Decode(bytes.NewReader(b))
			if err != nil {
				t.Fatalf("screenshot is not a PNG: %v", err)
			}
			if colors := chromium.DistinctColors(img); colors < 50 {
				t.Fatalf("screenshot has %d colors: the page did not render", colors)
			}

			srv2, n := pageServer(t, name, d)
			dom := chromium.Run(t, bin, "--virtual-time-budget=15000", "--dump-dom", srv2.URL+"/")
			if !strings.Contains(string(dom), "The real page arrived") || n.Load() < 2 {
				t.Fatalf("the page did not refresh itself: %d requests, DOM %.300s", n.Load(), dom)
			}
		})
	}
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
