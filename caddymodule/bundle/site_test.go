package bundle

import (
	"crypto/ed25519"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// origin stands for the handlers after `bundle`: the proxy to the origin.
var origin = caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("X-Origin", "yes")
	w.Header().Set("Server", "origin")
	w.Write([]byte("origin " + r.URL.Path))
	return nil
})

func serveSite(t *testing.T, s *Site, method, target string, hdr ...string) (*httptest.ResponseRecorder, error) {
	t.Helper()
	r := httptest.NewRequest(method, target, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	_, err := s.serve(w, r, origin)
	return w, err
}

const siteRules = `"redirects": [{"from": "/old/*", "to": "/new/*", "status": 301}, {"from": "/away", "to": "https://elsewhere.example/"}],
	"rewrites": [{"from": "/latest", "to": "/v2.html"}],
	"headers": [{"path": "*", "set": {"X-Frame-Options": "DENY"}, "delete": ["Server"]}],
	"cache": [{"path": "/assets/*", "cache_control": "public, max-age=31536000, immutable"}]`

func openTestSite(t *testing.T, noOrigin bool) *Site {
	pub, priv, _ := ed25519.GenerateKey(nil)
	s := newTestStore(t, Policy{Key: pub})
	rules := siteRules
	if noOrigin {
		rules += `, "no_origin": true`
	}
	file, digest, sig := build(t, priv, "a.example", "1", "", rules, map[string]string{
		"public/index.html": "home", "public/v2.html": "version two", "public/assets/app.css": "body{}",
		"public/docs/index.html": "docs", "data/secret.json": "{}",
	})
	if err := s.Install("a.example", digest, sig, file); err != nil {
		t.Fatal(err)
	}
	return s.Get("a.example")
}

// The bundle answers what it covers, in order (redirects, rewrites,
// files), applies its header rules to every answer, and passes the rest
// to the origin.
func TestSiteServesItsRules(t *testing.T) {
	s := openTestSite(t, false)
	cases := []struct {
		target, status, body, header string
	}{
		{"/", "200", "home", "Content-Type=text/html; charset=utf-8"},
		{"/assets/app.css", "200", "body{}", "Cache-Control=public, max-age=31536000, immutable"},
		{"/latest", "200", "version two", ""},
		{"/old/a/b?q=1", "301", "", "Location=/new/a/b?q=1"},
		{"/away", "302", "", "Location=https://elsewhere.example/"},
		{"/docs", "308", "", "Location=/docs/"},
		{"/docs/", "200", "docs", ""},
		{"/product/1", "200", "origin /product/1", "X-Origin=yes"},
		// Data files are for functions, never served; nor is anything
		// outside the bundle's files.
		{"/data/secret.json", "200", "origin /data/secret.json", ""},
		{"/../data/secret.json", "200", "origin /../data/secret.json", ""},
		{"/manifest.json", "200", "origin /manifest.json", ""},
	}
	for _, c := range cases {
		w, err := serveSite(t, s, "GET", c.target)
		if err != nil {
			t.Errorf("%s: %v", c.target, err)
			continue
		}
		if got := w.Code; c.status != strconv.Itoa(got) || (c.body != "" && w.Body.String() != c.body) {
			t.Errorf("%s: %d %q, want %s %q", c.target, got, w.Body.String(), c.status, c.body)
		}
		if k, v, ok := strings.Cut(c.header, "="); ok && w.Header().Get(k) != v {
			t.Errorf("%s: %s %q, want %q", c.target, k, w.Header().Get(k), v)
		}
		if w.Header().Get("X-Frame-Options") != "DENY" || w.Header().Get("Server") != "" {
			t.Errorf("%s: header rules not applied: %v", c.target, w.Header())
		}
	}
	// Conditional requests: the ETag is the file's hash.
	w, _ := serveSite(t, s, "GET", "/assets/app.css")
	if w2, _ := serveSite(t, s, "GET", "/assets/app.css", "If-None-Match", w.Header().Get("Etag")); w2.Code != 304 {
		t.Errorf("If-None-Match: %d", w2.Code)
	}
	// A static path is read-only.
	var he caddyhttp.HandlerError
	if _, err := serveSite(t, s, "POST", "/"); !errors.As(err, &he) || he.StatusCode != 405 {
		t.Errorf("POST /: %v", err)
	}
}

// A site with no origin answers 404 for what its bundle lacks (fallback
// makes it the site's page), and never calls the next handler.
func TestSiteWithoutOrigin(t *testing.T) {
	s := openTestSite(t, true)
	_, err := serveSite(t, s, "GET", "/product/1")
	var he caddyhttp.HandlerError
	if !errors.As(err, &he) || he.StatusCode != 404 {
		t.Fatalf("uncovered path: %v", err)
	}
	if w, _ := serveSite(t, s, "GET", "/"); w.Body.String() != "home" {
		t.Fatalf("covered path: %q", w.Body.String())
	}
}
