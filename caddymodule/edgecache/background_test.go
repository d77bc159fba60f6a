package edgecache

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/conductor-edge/conductor/caddymodule/waitingroom" // the room in front of the cache
)

// headerLog keeps the header of every request the origin gets, by
// User-Agent, so a test can look at what a background refresh sent.
type headerLog struct {
	mu  sync.Mutex
	got map[string]http.Header
}

func (l *headerLog) record(r *http.Request) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.got == nil {
		l.got = map[string]http.Header{}
	}
	l.got[r.Header.Get("User-Agent")] = r.Header.Clone()
}

// background returns the header of the front-end's own request, if any.
func (l *headerLog) background() http.Header {
	l.mu.Lock()
	defer l.mu.Unlock()
	for ua, h := range l.got {
		if strings.HasPrefix(ua, "conductor-edge-cache/") {
			return h
		}
	}
	return nil
}

// swrEdge is a front-end that trusts loopback as a proxy (as a front-end
// behind a load balancer does) with `extra` before its edge_cache, in front
// of o; "{cache}" in extra is replaced by nothing, cacheOpts go in the
// edge_cache block ("{site}" is the site's address).
func swrEdge(t *testing.T, o *origin, extra string, cacheOpts ...string) *edge {
	port, admin := freeTCPPort(t), freeTCPPort(t)
	opts := strings.ReplaceAll(strings.Join(cacheOpts, "\n"), "{site}", fmt.Sprintf("127.0.0.1:%d", port))
	return loadEdge(t, fmt.Sprintf(`{
	admin 127.0.0.1:%d
	auto_https off
	persist_config off
	servers {
		trusted_proxies static 127.0.0.0/8
	}
}
http://127.0.0.1:%d {
	route {
%s
		edge_cache {
			%s
		}
		reverse_proxy %s
	}
}
`, admin, port, extra, opts, strings.TrimPrefix(o.URL, "http://")), port, admin)
}

// A background refresh is the front-end's request, not the client's that
// happened to trigger it: it sends only what the entry varies on. The
// client's X-Forwarded-*, cookies and credentials never reach the origin
// through it. Before, the refresh replayed the client's header, and since
// the front-end trusts itself as a proxy, a forged X-Forwarded-For reached
// the origin as the truth and shaped the entry everyone got.
func TestRefreshDoesNotLaunderForwardedHeaders(t *testing.T) {
	var log headerLog
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		log.record(r)
		w.Header().Set("Cache-Control", "max-age=1, stale-while-revalidate=60")
		w.Header().Set("Vary", "Accept-Language")
		fmt.Fprintf(w, "for %s", r.Header.Get("X-Forwarded-For"))
	})
	e := swrEdge(t, o, "")
	e.get("/page", "Accept-Language", "fr")
	time.Sleep(1100 * time.Millisecond) // stale now
	e.get("/page", "Accept-Language", "fr",
		"X-Forwarded-For", "203.0.113.66", "X-Forwarded-Host", "evil.example", "X-Forwarded-Proto", "https",
		"Cookie", "session=victim", "Authorization", "Bearer stolen", "X-Custom", "client")
	var refresh http.Header
	waitFor(t, "the background refresh", func() bool {
		refresh = log.background()
		return refresh != nil
	})
	if got := refresh.Get("Accept-Language"); got != "fr" {
		t.Errorf("the refresh lost the header the entry varies on: Accept-Language %q", got)
	}
	if xff := refresh.Get("X-Forwarded-For"); strings.Contains(xff, "203.0.113.66") {
		t.Errorf("the client's X-Forwarded-For reached the origin through the refresh: %q", xff)
	}
	for _, k := range []string{"Cookie", "Authorization", "X-Custom"} {
		if v := refresh.Get(k); v != "" {
			t.Errorf("the refresh carried the client's %s: %q", k, v)
		}
	}
	if h := refresh.Get("X-Forwarded-Host"); h == "evil.example" {
		t.Errorf("the refresh carried the client's X-Forwarded-Host")
	}
}

// The front-end's own fetches (warms, refreshes) take no visitor's place in
// the waiting room: they are marked in their context, which no header can
// forge. Before, a warm arrived as a new visitor and took the room's only
// place for a whole session, and a refresh got through only by replaying
// the cookie of the visitor who triggered it.
func TestBackgroundFetchSkipsWaitingRoom(t *testing.T) {
	var version atomic.Int64
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=1, stale-while-revalidate=60")
		fmt.Fprintf(w, "v%d", version.Load())
	})
	room := fmt.Sprintf("bg%d", time.Now().UnixNano())
	e := swrEdge(t, o, fmt.Sprintf(`	waiting_room %s {
		total_active_users 1
		new_users_per_minute 6000
		secret "a test secret of enough length"
	}`, room), "warm http://{site}/warmed")
	waitFor(t, "the warm", func() bool { return o.count("/warmed") == 1 })
	// The one place in the room is still free: the first visitor gets it
	// and keeps it.
	resp, b := e.get("/page")
	if b != "v0" {
		t.Fatalf("first visitor: %q", b)
	}
	var session string
	for _, c := range resp.Cookies() {
		session = c.Name + "=" + c.Value
	}
	if _, b := e.get("/page"); !strings.Contains(b, "You are in line") {
		t.Fatalf("a second visitor in a full room: %q", b)
	}
	time.Sleep(1100 * time.Millisecond)
	version.Store(1)
	e.get("/page", "Cookie", session) // stale: starts the refresh
	waitFor(t, "the refresh to reach the origin and land", func() bool {
		_, b := e.get("/page", "Cookie", session)
		return b == "v1"
	})
}
