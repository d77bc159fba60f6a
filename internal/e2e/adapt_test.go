package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/conductor-edge/conductor/internal/nscaddy"
	"github.com/conductor-edge/conductor/internal/shop"
	"github.com/conductor-edge/conductor/internal/transportbench"
	"github.com/conductor-edge/conductor/internal/wan"
)

// tinyJPEG is an image no conversion makes smaller: 16×16 grey at quality 10.
func tinyJPEG() []byte {
	var b bytes.Buffer
	jpeg.Encode(&b, image.NewGray(image.Rect(0, 0, 16, 16)), &jpeg.Options{Quality: 10})
	return b.Bytes()
}

// A client that sends Save-Data gets the lite class: the origin is told,
// renders for it, and each class is cached apart. The front-end asks for
// the hints it uses (Accept-CH), and the page varies on them for caches
// after it.
func TestAdaptSaveDataGetsLite(t *testing.T) {
	f := esiSetup(t)
	resp, body := f.get(t, "/adapt/page", "Save-Data", "on")
	if body != "class=lite" || resp.Header.Get("Conductor-Client-Class") != "lite" {
		t.Fatalf("with Save-Data: %q (class header %q)", body, resp.Header.Get("Conductor-Client-Class"))
	}
	if ach := resp.Header.Get("Accept-CH"); !strings.Contains(ach, "Save-Data") || !strings.Contains(ach, "Downlink") {
		t.Errorf("Accept-CH %q", ach)
	}
	if v := resp.Header.Get("Vary"); !strings.Contains(v, "Save-Data") || strings.Contains(v, "Conductor") {
		t.Errorf("Vary %q: want the client hints, not the front-end's own headers", v)
	}
	if _, body := f.get(t, "/adapt/page"); body != "class=full" {
		t.Fatalf("without Save-Data: %q", body)
	}
	resp, body = f.get(t, "/adapt/page", "Save-Data", "on")
	if body != "class=lite" || !strings.Contains(resp.Header.Get("Cache-Status"), "hit") {
		t.Fatalf("lite again: %q, Cache-Status %q", body, resp.Header.Get("Cache-Status"))
	}
	host := strings.TrimPrefix(f.tp.FrontendURL(0), "http://")
	if n := f.origin.seen(host + " /adapt/page"); n != 2 {
		t.Fatalf("origin rendered the page %d times, want 2 (one per class)", n)
	}
	if n := f.metric(t, "conductor_adapt_requests_total", `class="lite",reason="save-data",site="shop"`); n < 2 {
		t.Fatalf("conductor_adapt_requests_total{class=lite,reason=save-data} = %v", n)
	}
}

// An image is converted once per class: the second request of a class is
// an edge_cache hit of the converted variant, and another class makes a
// variant of its own.
func TestAdaptVariantsCached(t *testing.T) {
	f := esiSetup(t)
	host := strings.TrimPrefix(f.tp.FrontendURL(0), "http://")
	converted := func() float64 {
		return f.metric(t, "conductor_adapt_images_total", `outcome="converted",site="shop"`)
	}
	before := converted()
	orig := len(shop.Photo(7, 1600, 1067))
	lite := []string{"Save-Data", "on", "Accept", "image/webp,*/*"}
	r1, b1 := f.get(t, "/adapt/photo/7.jpg", lite...)
	r2, b2 := f.get(t, "/adapt/photo/7.jpg", lite...)
	if r1.Header.Get("Content-Type") != "image/webp" || len(b1) >= orig/4 || b1 != b2 {
		t.Fatalf("lite WebP: %s, %d bytes (origin %d); again %d bytes", r1.Header.Get("Content-Type"), len(b1), orig, len(b2))
	}
	if !strings.Contains(r2.Header.Get("Cache-Status"), "hit") {
		t.Fatalf("second lite request: Cache-Status %q, want a hit", r2.Header.Get("Cache-Status"))
	}
	text := []string{"ECT", "2g", "Accept", "image/jpeg"}
	r3, b3 := f.get(t, "/adapt/photo/7.jpg", text...)
	r4, _ := f.get(t, "/adapt/photo/7.jpg", text...)
	if r3.Header.Get("Content-Type") != "image/jpeg" || len(b3) >= orig/4 || b3 == b1 {
		t.Fatalf("text JPEG: %s, %d bytes (origin %d)", r3.Header.Get("Content-Type"), len(b3), orig)
	}
	if !strings.Contains(r4.Header.Get("Cache-Status"), "hit") {
		t.Fatalf("second text request: Cache-Status %q, want a hit", r4.Header.Get("Cache-Status"))
	}
	// The full class gets the origin's own photo.
	if _, b5 := f.get(t, "/adapt/photo/7.jpg", "Accept", "image/webp"); len(b5) != orig {
		t.Fatalf("full class: %d bytes, want the origin's %d", len(b5), orig)
	}
	if got := converted() - before; got != 2 {
		t.Fatalf("%v conversions for two classes, four requests; want 2", got)
	}
	if n := f.origin.seen(host + " /adapt/photo/7.jpg"); n != 3 {
		t.Fatalf("origin served the photo %d times, want 3 (once per variant)", n)
	}
	t.Logf("photo: origin %d bytes; lite WebP %d; text JPEG %d", orig, len(b1), len(b3))
}

// No class and no format ever gets more bytes than the origin sent: an
// image the conversion cannot shrink is served as it came.
func TestAdaptNeverGrowsBytes(t *testing.T) {
	f := esiSetup(t)
	skippedBefore := f.metric(t, "conductor_adapt_images_total", `outcome="skipped_larger",site="shop"`)
	tiny := tinyJPEG()
	photo := shop.Photo(8, 1600, 1067)
	for _, hdr := range [][]string{
		{"Accept", "image/jpeg"},
		{"Accept", "image/webp"},
		{"Save-Data", "on", "Accept", "image/jpeg"},
		{"Save-Data", "on", "Accept", "image/webp"},
		{"ECT", "2g", "Accept", "image/jpeg"},
	} {
		_, got := f.get(t, "/adapt/tiny.jpg", hdr...)
		if len(got) > len(tiny) {
			t.Errorf("%v: tiny JPEG of %d bytes served as %d", hdr, len(tiny), len(got))
		}
		if hdr[1] == "image/jpeg" && got != string(tiny) {
			t.Errorf("%v: tiny JPEG not served as it came (%d bytes, origin %d)", hdr, len(got), len(tiny))
		}
		if _, got := f.get(t, "/adapt/photo/8.jpg", hdr...); len(got) > len(photo) {
			t.Errorf("%v: photo of %d bytes served as %d", hdr, len(photo), len(got))
		}
	}
	if got := f.metric(t, "conductor_adapt_images_total", `outcome="skipped_larger",site="shop"`) - skippedBefore; got < 2 {
		t.Fatalf("skipped_larger rose by %v, want at least 2 (the tiny JPEG as JPEG, for lite and for text)", got)
	}
}

// A client behind the emulated mobile link (150 ms round trip, 20 Mbit/s,
// bursty loss) gets the lite class without sending a single hint: the
// front-end measured its connection (TCP_INFO). A client beside the
// front-end, through the same Caddy, gets full. Needs root (namespaces).
func TestAdaptMeasuredSlowLink(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: end-to-end")
	}
	spec, _ := transportbench.ProfileByName("mobile")
	l, err := spec.Link("")
	if errors.Is(err, wan.ErrNotRoot) {
		t.Skip("the WAN emulator needs root (CI runs as root)")
	}
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()

	// The origin, in the front-end's namespace, says what it was told.
	var originLn net.Listener
	if err := l.InB(func() (err error) {
		originLn, err = net.Listen("tcp", "127.0.0.1:0")
		return
	}); err != nil {
		t.Fatal(err)
	}
	origin := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "class=%s", r.Header.Get("Conductor-Client-Class"))
	})}
	go origin.Serve(originLn)
	defer origin.Close()

	dir := t.TempDir()
	const port = 8090
	fe, err := nscaddy.Start(context.Background(), dir, "frontend", l.NSB, fmt.Sprintf(`{
	admin unix/%s
	persist_config off
	storage file_system %s
}
http://:%d {
	bind %s 127.0.0.1
	adapt
	reverse_proxy %s
}
`, nscaddy.AdminSocket(dir, "frontend"), dir, port, l.AddrB, originLn.Addr()), binary)
	if err != nil {
		t.Fatal(err)
	}
	defer fe.Stop()

	// clientIn is an HTTP client whose connections are made in namespace ns.
	clientIn := func(in func(func() error) error) *http.Client {
		return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, addr string) (c net.Conn, err error) {
				err = in(func() (err error) {
					c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
					return
				})
				return
			},
		}}
	}
	classOf := func(c *http.Client, url string) (string, error) {
		resp, err := c.Get(url)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	near := clientIn(l.InB)
	nearURL := fmt.Sprintf("http://127.0.0.1:%d/", port)
	if got, err := classOf(near, nearURL); err != nil || got != "class=full" {
		t.Fatalf("a client beside the front-end: %q, %v; want class=full", got, err)
	}
	far := clientIn(l.InA)
	got, err := classOf(far, fmt.Sprintf("http://%s:%d/", l.AddrB, port))
	if err != nil || got != "class=lite" {
		t.Fatalf("a client behind the mobile link, with no hints: %q, %v; want class=lite", got, err)
	}
}
