package edgecache

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestHitAfterMiss(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "page v1")
	})
	e := startEdge(t, o, "")
	r1, b1 := e.get("/page")
	r2, b2 := e.get("/page")
	if b1 != "page v1" || b2 != "page v1" {
		t.Fatalf("bodies %q, %q", b1, b2)
	}
	if o.count("/page") != 1 {
		t.Fatalf("origin saw %d requests, want 1", o.count("/page"))
	}
	if !strings.Contains(cacheStatus(r1), "fwd=uri-miss") || !strings.Contains(cacheStatus(r1), "stored") {
		t.Errorf("first Cache-Status %q, want a stored miss", cacheStatus(r1))
	}
	if !strings.HasPrefix(cacheStatus(r2), "conductor; hit; ttl=") || r2.Header.Get("Age") == "" {
		t.Errorf("second Cache-Status %q, Age %q; want a hit with an Age", cacheStatus(r2), r2.Header.Get("Age"))
	}
	// HEAD and ranges are answered from the stored GET.
	r3, b3 := e.do(http.MethodHead, "/page")
	r4, b4 := e.get("/page", "Range", "bytes=5-6")
	if r3.StatusCode != 200 || b3 != "" || r4.StatusCode != 206 || b4 != "v1" || o.count("/page") != 1 {
		t.Errorf("HEAD %d %q, range %d %q, origin %d", r3.StatusCode, b3, r4.StatusCode, b4, o.count("/page"))
	}
	// A conditional request to a stored entry gets a 304 from the cache.
	o.handler.Store(ptrTo(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("ETag", `"e1"`)
		fmt.Fprint(w, "etagged")
	}))
	e.get("/etag")
	r5, _ := e.get("/etag", "If-None-Match", `"e1"`)
	if r5.StatusCode != http.StatusNotModified || o.count("/etag") != 1 {
		t.Errorf("conditional hit: %d, origin %d", r5.StatusCode, o.count("/etag"))
	}
}

func ptrTo(f http.HandlerFunc) *http.HandlerFunc { return &f }

func TestVarySeparatesVariants(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Vary", "Accept-Language")
		fmt.Fprintf(w, "lang=%s", r.Header.Get("Accept-Language"))
	})
	e := startEdge(t, o, "")
	for _, lang := range []string{"en", "fr", "en", "fr", "en"} {
		_, b := e.get("/greeting", "Accept-Language", lang)
		if b != "lang="+lang {
			t.Fatalf("Accept-Language %s got %q", lang, b)
		}
	}
	if n := o.count("/greeting"); n != 2 {
		t.Fatalf("origin saw %d requests for 2 variants", n)
	}
	// Vary: * is never stored.
	o.handler.Store(ptrTo(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Vary", "*")
		fmt.Fprint(w, "x")
	}))
	e.get("/star")
	e.get("/star")
	if n := o.count("/star"); n != 2 {
		t.Fatalf("Vary: * stored: origin saw %d", n)
	}
}

func TestRevalidationWith304(t *testing.T) {
	var notModified atomic.Int64
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=0")
		w.Header().Set("ETag", `"v1"`)
		w.Header().Set("X-Origin-Note", "from-"+r.Method)
		if r.Header.Get("If-None-Match") == `"v1"` {
			notModified.Add(1)
			w.WriteHeader(http.StatusNotModified)
			return
		}
		fmt.Fprint(w, "big body v1")
	})
	e := startEdge(t, o, "")
	e.get("/doc")
	r, b := e.get("/doc")
	if b != "big body v1" || r.StatusCode != 200 {
		t.Fatalf("after revalidation: %d %q", r.StatusCode, b)
	}
	if notModified.Load() != 1 {
		t.Fatalf("origin answered 304 %d times, want 1 (the second request revalidates)", notModified.Load())
	}
	if cs := cacheStatus(r); !strings.Contains(cs, "fwd=stale; fwd-status=304") {
		t.Errorf("Cache-Status %q, want fwd=stale; fwd-status=304", cs)
	}
}

func TestStaleWhileRevalidateAnswersAtOnceAndRefreshOutlivesTheClient(t *testing.T) {
	var version atomic.Int64
	version.Store(1)
	release := make(chan struct{})
	var refreshes atomic.Int64
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		v := version.Load()
		maxAge := 1
		if v > 1 {
			// The refresh: held until the test lets it go, long after the
			// client that triggered it has gone. Its answer stays fresh
			// for a minute: the time it was held counts in its age
			// (RFC 9111 §4.2.3), and with max-age=1 a slow machine could
			// see it stale again, and refreshed a second time, before the
			// test looked.
			refreshes.Add(1)
			<-release
			maxAge = 60
		}
		w.Header().Set("Cache-Control", fmt.Sprintf("max-age=%d, stale-while-revalidate=60", maxAge))
		fmt.Fprintf(w, "v%d", v)
	})
	e := startEdge(t, o, "")
	if _, b := e.get("/swr"); b != "v1" {
		t.Fatal(b)
	}
	time.Sleep(1100 * time.Millisecond) // past max-age=1
	version.Store(2)

	// The client reads the stale answer while the origin is still held,
	// so the answer cannot have waited for it; then the client goes away.
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.base+"/swr", nil)
	tr := &http.Transport{}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	cancel()
	tr.CloseIdleConnections()
	if string(b) != "v1" || !strings.Contains(cacheStatus(resp), "stale-while-revalidate") {
		t.Fatalf("stale answer: %q, Cache-Status %q", b, cacheStatus(resp))
	}
	waitFor(t, "the background refresh to reach the origin", func() bool { return refreshes.Load() == 1 })
	close(release)
	waitFor(t, "the refresh to land", func() bool {
		r, b := e.get("/swr")
		return b == "v2" && strings.HasPrefix(cacheStatus(r), "conductor; hit")
	})
	if n := o.count("/swr"); n != 2 {
		t.Fatalf("origin saw %d requests, want 2 (fill, one refresh)", n)
	}
}

func TestStaleIfErrorOnceTheOriginIsStopped(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=1, stale-if-error=300")
		fmt.Fprint(w, "still here")
	})
	e := startEdge(t, o, "")
	e.get("/sie")
	o.Close()
	time.Sleep(1100 * time.Millisecond)
	r, b := e.get("/sie")
	if r.StatusCode != 200 || b != "still here" || !strings.Contains(cacheStatus(r), "stale-if-error") {
		t.Fatalf("origin down: %d %q %q", r.StatusCode, b, cacheStatus(r))
	}
	// Once the window has passed (or without one), the error shows.
	r, _ = e.get("/never-stored")
	if r.StatusCode != http.StatusBadGateway {
		t.Fatalf("uncached with origin down: %d, want 502", r.StatusCode)
	}
}

func TestOperatorGraceServesStaleWhateverTheHeaders(t *testing.T) {
	var failing atomic.Bool
	hold := make(chan struct{})
	defer close(hold)
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		switch {
		case failing.Load() && r.URL.Path == "/slow":
			<-hold
		case failing.Load():
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, "origin overloaded")
			return
		}
		w.Header().Set("Cache-Control", "max-age=1, must-revalidate")
		fmt.Fprint(w, "good copy")
	})
	e := startEdge(t, o, "stale_on_error 5m\norigin_timeout 300ms")
	e.get("/5xx")
	e.get("/slow")
	time.Sleep(1100 * time.Millisecond)
	failing.Store(true)
	r, b := e.get("/5xx")
	if r.StatusCode != 200 || b != "good copy" || !strings.Contains(cacheStatus(r), "stale-if-error") {
		t.Fatalf("origin 503 with grace: %d %q %q", r.StatusCode, b, cacheStatus(r))
	}
	// The origin holds the request: the client gets the stale copy while
	// the origin is still holding it.
	r, b = e.get("/slow")
	if r.StatusCode != 200 || b != "good copy" || !strings.Contains(cacheStatus(r), "origin-timeout") {
		t.Fatalf("slow origin with grace: %d %q %q", r.StatusCode, b, cacheStatus(r))
	}
	// Without grace, must-revalidate means the 503 goes through.
	e2 := startEdge(t, o, "")
	failing.Store(false)
	e2.get("/5xx-strict")
	time.Sleep(1100 * time.Millisecond)
	failing.Store(true)
	if r, _ := e2.get("/5xx-strict"); r.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("must-revalidate without grace: %d, want the origin's 503", r.StatusCode)
	}
}

func TestConcurrentMissesMakeOneOriginRequest(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(300 * time.Millisecond) // long enough for all to arrive
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, strings.Repeat("z", 10000))
	})
	e := startEdge(t, o, "")
	var wg sync.WaitGroup
	errs := make(chan string, 100)
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Get(e.base + "/hot")
			if err != nil {
				errs <- err.Error()
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || len(b) != 10000 {
				errs <- fmt.Sprintf("%d, %d bytes", resp.StatusCode, len(b))
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if n := o.count("/hot"); n != 1 {
		t.Fatalf("100 concurrent misses made %d origin requests, want 1", n)
	}
}

func TestPurgeByTagURLPrefixAndSoft(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("ETag", `"same"`)
		switch r.URL.Path {
		case "/p/1":
			w.Header().Set("Surrogate-Key", "product-1 catalog")
		case "/p/2":
			w.Header().Set("Cache-Tag", "product-2,catalog")
		}
		if r.Header.Get("If-None-Match") == `"same"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		fmt.Fprint(w, r.URL.Path)
	})
	e := startEdge(t, o, "")
	fill := func() {
		for _, p := range []string{"/p/1", "/p/2", "/other"} {
			e.get(p)
		}
	}
	fill()
	purge := func(path string, hdr ...string) int {
		r, b := e.do("PURGE", path, hdr...)
		if r.StatusCode != 200 {
			t.Fatalf("PURGE %s %v: %d %s", path, hdr, r.StatusCode, b)
		}
		var out struct{ Purged int }
		json.Unmarshal([]byte(b), &out)
		return out.Purged
	}
	if n := purge("/", "Surrogate-Key", "product-1"); n != 1 {
		t.Fatalf("purge by tag product-1 removed %d", n)
	}
	fill()
	if o.count("/p/1") != 2 || o.count("/p/2") != 1 || o.count("/other") != 1 {
		t.Fatalf("after tag purge: origin counts %v", o.counts)
	}
	if n := purge("/", "Surrogate-Key", "catalog"); n != 2 {
		t.Fatalf("purge by tag catalog removed %d, want 2", n)
	}
	if n := purge("/other"); n != 1 {
		t.Fatalf("purge by URL removed %d", n)
	}
	fill()
	if n := purge("/p/*"); n != 2 {
		t.Fatalf("purge by prefix removed %d, want 2", n)
	}
	fill()
	// Soft purge keeps the entry for revalidation: a 304 refreshes it.
	if n := purge("/other", "Soft-Purge", "1"); n != 1 {
		t.Fatalf("soft purge marked %d", n)
	}
	r, b := e.get("/other")
	if b != "/other" || !strings.Contains(cacheStatus(r), "fwd-status=304") {
		t.Fatalf("after soft purge: %q %q", b, cacheStatus(r))
	}
	// The admin API purges too.
	resp, err := http.Post(e.admin+"/edge_cache/purge", "application/json", strings.NewReader(`{"tags":["catalog"]}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"purged":2`) {
		t.Fatalf("admin purge: %d %s", resp.StatusCode, body)
	}
}

func TestInvalidPurgeRequestsAreRefused(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		fmt.Fprint(w, "x")
	})
	e := startEdge(t, o, "")
	if r, _ := e.do("PURGE", "/", "Surrogate-Key", "   "); r.StatusCode != 400 {
		t.Errorf("PURGE with an empty tag: %d, want 400", r.StatusCode)
	}
	for _, tc := range []struct {
		method, body string
		want         int
	}{
		{"POST", `{"tags": [`, 400},
		{"POST", `{}`, 400},
		{"POST", `{"urls": [""]}`, 400},
		{"POST", `{"prefixes": ["no-path"]}`, 400},
		{"POST", `{"tags": ["a"], "bogus": 1}`, 400},
		{"POST", `{"tags": ["a"], "cache": "nope"}`, 404},
		{"GET", ``, 405},
		{"POST", `{"tags": ["` + strings.Repeat("a", 9000) + `"]}`, 400},
	} {
		req, _ := http.NewRequest(tc.method, e.admin+"/edge_cache/purge", strings.NewReader(tc.body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.body, resp.StatusCode, tc.want)
		}
	}
	// A client outside purge_allow is refused.
	e2 := startEdge(t, o, "purge_allow 10.0.0.0/8")
	if r, _ := e2.do("PURGE", "/x"); r.StatusCode != http.StatusForbidden {
		t.Errorf("PURGE from outside the allowlist: %d, want 403", r.StatusCode)
	}
	resp, err := http.Get(e2.admin + "/edge_cache/stats")
	if err != nil {
		t.Fatal(err)
	}
	var stats []Stats
	json.NewDecoder(resp.Body).Decode(&stats)
	resp.Body.Close()
	if len(stats) != 1 || stats[0].Name != "default" || stats[0].Policy != PolicyTinyLFU {
		t.Errorf("stats %+v", stats)
	}
}

func TestMalformedHeadersNeverBreakTheCache(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/malformed":
			w.Header()["Cache-Control"] = []string{`max-age=abc, ,,="", private="unterminated`, "s-maxage=-5"}
		case "/huge":
			w.Header().Set("Cache-Control", "max-age=60")
			for i := 0; i < 200; i++ {
				w.Header().Set(fmt.Sprintf("X-Big-%d", i), strings.Repeat("h", 200))
			}
			w.Header().Set("Surrogate-Key", strings.Repeat("tag ", 5000))
		case "/expires":
			w.Header().Set("Expires", "not a date")
			w.Header().Set("Age", "-12")
		}
		fmt.Fprint(w, r.URL.Path)
	})
	e := startEdge(t, o, "")
	for i := 0; i < 2; i++ {
		for _, p := range []string{"/malformed", "/huge", "/expires"} {
			if r, b := e.get(p, "Cache-Control", `max-stale="x", min-fresh=-1, =`); r.StatusCode != 200 || b != p {
				t.Fatalf("%s: %d %q", p, r.StatusCode, b)
			}
		}
	}
	// private (even malformed) is never stored; the huge one is, with its
	// tags capped; an invalid Expires means already stale.
	if o.count("/malformed") != 2 || o.count("/huge") != 1 {
		t.Fatalf("origin counts %v", o.counts)
	}
	if r, _ := e.get("/x", "X-Huge", strings.Repeat("q", 12000)); r.StatusCode != 200 {
		t.Fatalf("large request header: %d", r.StatusCode)
	}
	if r, _ := e.get("/x", "X-Huge", strings.Repeat("q", 60000)); r.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("request header beyond Caddy's 16 KiB: %d, want 431", r.StatusCode)
	}
}

func TestAuthorizationCookiesAndNoStore(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/public-auth":
			w.Header().Set("Cache-Control", "public, max-age=60")
		case "/set-cookie":
			w.Header().Set("Cache-Control", "max-age=60")
			w.Header().Set("Set-Cookie", "session=abc")
		case "/no-store":
			w.Header().Set("Cache-Control", "no-store")
		default:
			w.Header().Set("Cache-Control", "max-age=60")
		}
		fmt.Fprint(w, "ok")
	})
	e := startEdge(t, o, "bypass_cookie session")
	for i := 0; i < 2; i++ {
		e.get("/auth", "Authorization", "Bearer x")
		e.get("/public-auth", "Authorization", "Bearer x")
		e.get("/set-cookie")
		e.get("/no-store")
		e.get("/with-session", "Cookie", "session=1")
		e.get("/only-if-cached", "Cache-Control", "only-if-cached")
	}
	want := map[string]int{"/auth": 2, "/public-auth": 1, "/set-cookie": 2, "/no-store": 2, "/with-session": 2, "/only-if-cached": 0}
	for p, n := range want {
		if got := o.count(p); got != n {
			t.Errorf("%s: origin saw %d, want %d", p, got, n)
		}
	}
	if r, _ := e.get("/only-if-cached", "Cache-Control", "only-if-cached"); r.StatusCode != http.StatusGatewayTimeout {
		t.Errorf("only-if-cached miss: %d, want 504", r.StatusCode)
	}
}

func TestUnsafeMethodInvalidatesTheURL(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, r.Method)
	})
	e := startEdge(t, o, "")
	e.get("/cart")
	e.get("/cart")
	e.do(http.MethodPost, "/cart")
	e.get("/cart")
	if n := o.count("/cart"); n != 3 {
		t.Fatalf("origin saw %d, want 3 (fill, POST, refill)", n)
	}
}

func TestWarmAtStartAndRefreshAhead(t *testing.T) {
	var version atomic.Int64
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=6")
		fmt.Fprintf(w, "v%d", version.Add(1))
	})
	e := startEdge(t, o, "warm http://{site}/warm-me\nrefresh_ahead 0.5 2")
	// only-if-cached polls the cache without sending anything to the origin.
	var r *http.Response
	var b string
	waitFor(t, "warming", func() bool {
		r, b = e.get("/warm-me", "Cache-Control", "only-if-cached")
		return r.StatusCode == 200
	})
	if b != "v1" || !strings.Contains(cacheStatus(r), "hit") || o.count("/warm-me") != 1 {
		t.Fatalf("warmed URL: %q %q, origin %d", b, cacheStatus(r), o.count("/warm-me"))
	}
	// Two hits make it hot; past half its freshness, a hit refreshes it in
	// the background, so it never goes stale while it is read. (The
	// refresh has 3 s before the entry would go stale: with 1 s, a loaded
	// machine once took longer.)
	e.get("/warm-me")
	time.Sleep(3100 * time.Millisecond)
	e.get("/warm-me")
	waitFor(t, "the refresh ahead to land", func() bool {
		r, b := e.get("/warm-me")
		if !strings.HasPrefix(cacheStatus(r), "conductor; hit; ttl=") || strings.Contains(cacheStatus(r), "ttl=-") {
			t.Fatalf("a hot entry was not a fresh hit while it refreshed: %q %q", b, cacheStatus(r))
		}
		return b == "v2"
	})
	if n := o.count("/warm-me"); n != 2 {
		t.Fatalf("origin saw %d, want 2 (warm, refresh)", n)
	}
}

// A file_server behind the cache writes through io.Copy (ReadFrom): the
// cache must still see, and store, the whole response.
func TestFileServerBehindTheCache(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "f.txt"), []byte(strings.Repeat("file ", 3000)), 0o644)
	port, adminPort := freeTCPPort(t), freeTCPPort(t)
	e := loadEdge(t, fmt.Sprintf(`{
	admin 127.0.0.1:%d
	auto_https off
	persist_config off
}
http://127.0.0.1:%d {
	edge_cache
	header Cache-Control "max-age=60"
	root * %s
	file_server
}
`, adminPort, port, dir), port, adminPort)
	r1, b1 := e.get("/f.txt")
	os.WriteFile(filepath.Join(dir, "f.txt"), []byte("changed"), 0o644)
	r2, b2 := e.get("/f.txt")
	if len(b1) != 15000 || b2 != b1 || !strings.Contains(cacheStatus(r1), "stored") || !strings.Contains(cacheStatus(r2), "hit") {
		t.Fatalf("file_server origin: %d bytes %q, then %d bytes %q", len(b1), cacheStatus(r1), len(b2), cacheStatus(r2))
	}
}

// Hop-by-hop fields and Conductor's own (Conductor-Load-Index,
// Conductor-*, Load-Index) are never stored: a cached copy would replay the
// origin's load at one moment to every later client. Before, only the
// hop-by-hop fields were left out.
func TestInternalHeadersNotCached(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=60")
		w.Header().Set("Conductor-Load-Index", "0.95")
		w.Header().Set("Conductor-Load", "fe1=0.9")
		w.Header().Set("Load-Index", "3")
		w.Header().Set("Connection", "X-Hop")
		w.Header().Set("X-Hop", "1")
		w.Header().Set("X-Kept", "yes")
		fmt.Fprint(w, "page")
	})
	e := startEdge(t, o, "")
	e.get("/page") // miss: stored
	resp, body := e.get("/page")
	if body != "page" || !strings.Contains(resp.Header.Get("Cache-Status"), "hit") {
		t.Fatalf("second request not a hit: %q, Cache-Status %q", body, resp.Header.Get("Cache-Status"))
	}
	for _, k := range []string{"Conductor-Load-Index", "Conductor-Load", "Load-Index", "X-Hop"} {
		if v := resp.Header.Get(k); v != "" {
			t.Errorf("a hit carries %s: %q", k, v)
		}
	}
	if resp.Header.Get("X-Kept") != "yes" {
		t.Error("an end-to-end field was dropped")
	}
}
