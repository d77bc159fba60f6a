package edgecache

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/conductor-edge/conductor/internal/inproc"
)

// origin is a real HTTP origin server for the cache under test, counting
// the requests it gets per path.
type origin struct {
	*httptest.Server
	mu      sync.Mutex
	counts  map[string]int
	handler atomic.Pointer[http.HandlerFunc]
}

func newOrigin(t *testing.T, h http.HandlerFunc) *origin {
	o := &origin{counts: map[string]int{}}
	o.handler.Store(&h)
	o.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.mu.Lock()
		o.counts[r.URL.Path]++
		o.mu.Unlock()
		(*o.handler.Load())(w, r)
	}))
	t.Cleanup(o.Close)
	return o
}

func (o *origin) count(path string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.counts[path]
}

// edge is a real Caddy, in this process, with edge_cache in front of a
// reverse proxy to the origin.
type edge struct {
	t     *testing.T
	base  string // http://127.0.0.1:port
	admin string // http://127.0.0.1:port
}

func freeTCPPort(t *testing.T) int { return inproc.Port(t) }

// startEdge loads a Caddyfile whose site proxies to o through
// `edge_cache { <opts> }`; "{site}" in opts becomes the site's host:port.
// Each call replaces the running config.
func startEdge(t *testing.T, o *origin, opts string) *edge {
	t.Helper()
	return startEdgeOn(t, o, opts, freeTCPPort(t), freeTCPPort(t))
}

// startEdgeOn is startEdge on given ports, for a restart on the same ones.
func startEdgeOn(t *testing.T, o *origin, opts string, port, adminPort int) *edge {
	t.Helper()
	cf := fmt.Sprintf(`{
	admin 127.0.0.1:%d
	auto_https off
	persist_config off
}
http://127.0.0.1:%d {
	edge_cache {
		%s
	}
	reverse_proxy %s
}
`, adminPort, port, strings.ReplaceAll(opts, "{site}", fmt.Sprintf("127.0.0.1:%d", port)), strings.TrimPrefix(o.URL, "http://"))
	return loadEdge(t, cf, port, adminPort)
}

func loadEdge(t *testing.T, caddyfile string, port, adminPort int) *edge {
	t.Helper()
	inproc.Load(t, caddyfile)
	return &edge{t: t, base: fmt.Sprintf("http://127.0.0.1:%d", port), admin: fmt.Sprintf("http://127.0.0.1:%d", adminPort)}
}

// get sends a request and returns the response with its body read.
func (e *edge) do(method, path string, hdr ...string) (*http.Response, string) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.base+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	c := &http.Client{Timeout: 20 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return resp, string(b)
}

func (e *edge) get(path string, hdr ...string) (*http.Response, string) {
	e.t.Helper()
	return e.do(http.MethodGet, path, hdr...)
}

// waitFor polls cond for up to 10 s; background work has no other signal.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func cacheStatus(r *http.Response) string { return r.Header.Get("Cache-Status") }
