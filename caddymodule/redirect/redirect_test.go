package redirect

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/conductor-edge/conductor/internal/viewfollow"
)

func testHandler() *Handler {
	h := &Handler{MaxLoad: 0.9, Status: http.StatusTemporaryRedirect, Cookie: "conductor_redirected", CookieMaxAge: 60e9, MaxAge: 75e9,
		prefixes: []regionPrefix{{netip.MustParsePrefix("10.1.0.0/16"), "eu"}, {netip.MustParsePrefix("10.2.0.0/16"), "us"}}}
	h.setView(viewfollow.View{Sites: map[string][]viewfollow.Entry{"shop.example": {
		{Node: "fe-eu", Addr: "192.0.2.1", Region: "eu", Load: 0.5, Healthy: true, Ready: true},
		{Node: "fe-eu-busy", Addr: "192.0.2.2", Region: "eu", Load: 0.95, Healthy: true, Ready: true},
		{Node: "fe-us", Addr: "192.0.2.3", Region: "us", Load: 0.1, Healthy: true, Ready: true},
		{Node: "fe-us-new", Addr: "192.0.2.4", Region: "us", Load: 0.0, Healthy: true, Ready: false},
	}}})
	return h
}

var served = caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
	w.Write([]byte("origin"))
	return nil
})

func serve(h *Handler, r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r, served)
	return w
}

// The choice: the client's region first, then the least loaded; never a
// front-end at max load or without the site's bundle.
func TestChoosesByRegionThenLoad(t *testing.T) {
	h := testHandler()
	for remote, want := range map[string]string{
		"10.1.3.4:5000": "http://192.0.2.1/a?b=c", // eu: fe-eu (fe-eu-busy is over max load)
		"10.2.3.4:5000": "http://192.0.2.3/a?b=c", // us: fe-us (fe-us-new lacks the bundle)
		"10.9.3.4:5000": "http://192.0.2.3/a?b=c", // no region: the least loaded
	} {
		r := httptest.NewRequest(http.MethodGet, "http://shop.example/a?b=c", nil)
		r.RemoteAddr = remote
		if w := serve(h, r); w.Code != 307 || w.Header().Get("Location") != want {
			t.Errorf("client %s: %d %q, want 307 %q", remote, w.Code, w.Header().Get("Location"), want)
		}
	}
}

// A request that came over TMP, from a front-end, is never redirected
// (that is how the front-end reaches the origin).
func TestNeverRedirectsWhatCameOverTMP(t *testing.T) {
	h := testHandler()
	r := httptest.NewRequest(http.MethodGet, "http://shop.example/", nil)
	r.RemoteAddr = "10.1.3.4:5000"
	r = r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 4433}))
	if w := serve(h, r); w.Code != 200 || w.Body.String() != "origin" {
		t.Fatalf("over TMP: %d %q", w.Code, w.Body)
	}
}

// A view older than max_age is not used: the origin serves.
func TestStaleViewServesHere(t *testing.T) {
	h := testHandler()
	h.viewAt.Store(time.Now().Add(-2 * time.Minute).UnixNano())
	r := httptest.NewRequest(http.MethodGet, "http://shop.example/", nil)
	if w := serve(h, r); w.Code != 200 {
		t.Fatalf("with a stale view: %d", w.Code)
	}
}
