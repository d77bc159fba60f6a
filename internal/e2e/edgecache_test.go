package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/conductor-edge/conductor/internal/topology"
)

// nginxOrigin writes an nginx configuration serving www under dir on addr,
// with the cache headers each location needs, and logs one line per
// request ("METHOD URI STATUS") so the test can count what reached it.
func nginxOrigin(t *testing.T, dir, addr string) []string {
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/nginx"); serr != nil {
			t.Skip("nginx is not installed (.ci/run installs Debian's nginx-light)")
		}
		bin = "/usr/sbin/nginx"
	}
	www := filepath.Join(dir, "www")
	files := map[string]string{
		"index.html":      "home",
		"fresh/page.html": "fresh page",
		"fresh/big.bin":   strings.Repeat("b", 1<<20),
		"reval/doc.html":  "revalidated doc",
		"vary/greet.html": "greeting",
		"stale/keep.html": "kept through the outage",
		"swr/news.html":   "news v1",
	}
	for name, body := range files {
		p := filepath.Join(www, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	user := ""
	if os.Geteuid() == 0 {
		user = "user root root;" // the test's temporary directory is root's alone
	}
	conf := fmt.Sprintf(`%s
worker_processes 1;
pid %[2]s/nginx.pid;
error_log %[2]s/nginx-error.log;
daemon off;
events { worker_connections 512; }
http {
	log_format counts '$request_method $request_uri $status';
	access_log %[2]s/access.log counts;
	client_body_temp_path %[2]s/tmp-body;
	proxy_temp_path %[2]s/tmp-proxy;
	fastcgi_temp_path %[2]s/tmp-fastcgi;
	uwsgi_temp_path %[2]s/tmp-uwsgi;
	scgi_temp_path %[2]s/tmp-scgi;
	server {
		listen %[3]s;
		root %[4]s;
		location /fresh/ { add_header Cache-Control "max-age=300"; add_header Surrogate-Key "fresh-tag"; }
		location /reval/ { add_header Cache-Control "no-cache"; }
		location /vary/  { add_header Cache-Control "max-age=300"; add_header Vary "Accept-Language"; }
		location /stale/ { add_header Cache-Control "max-age=1, stale-if-error=300"; }
		location /swr/   { add_header Cache-Control "max-age=1, stale-while-revalidate=60"; }
	}
}
`, user, dir, addr, www)
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return []string{bin, "-p", dir, "-c", confPath}
}

// nginxCount counts access-log lines with this method, URI and status.
func nginxCount(t *testing.T, dir, line string, want int) int {
	t.Helper()
	// nginx logs a request after it has sent the response, so the log line
	// can come a moment after the client has the response: wait for the
	// count to reach want, for up to two seconds.
	n := 0
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		b, _ := os.ReadFile(filepath.Join(dir, "access.log"))
		n = 0
		for _, l := range strings.Split(string(b), "\n") {
			if l == line {
				n++
			}
		}
		if n >= want || time.Now().After(deadline) {
			return n
		}
	}
}

// The edge cache on a real front-end, over TMP to a back-end, in front of
// Debian's nginx: hits, Vary, 304 revalidation, coalescing, purge by tag,
// stale-while-revalidate and stale-if-error once nginx is stopped.
func TestEdgeCacheInFrontOfNginx(t *testing.T) {
	dir := filepath.Join(tmpDir, "edgecache")
	os.RemoveAll(dir) // a fresh access log when run with -count
	os.MkdirAll(dir, 0o755)
	originAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1"))
	opts := topology.Options{
		Binary:        binary,
		Dir:           dir,
		OriginAddr:    originAddr,
		OriginCommand: nginxOrigin(t, dir, originAddr),
		BackendTMP:    fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1")),
		Frontends:     []string{fmt.Sprintf("127.0.0.6:%d", freePort(t, "127.0.0.6"))},
		AdminBase:     freeAdminBase(t, 2),
		FrontendExtra: "edge_cache e2e {\n\t\tsite shop\n\t}",
		Progress:      func(f string, a ...any) { t.Logf(f, a...) },
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tp, err := topology.Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Stop()
	fe := tp.FrontendURL(0)
	get := func(path string, hdr ...string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, fe+path, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, string(b)
	}

	// A hit after a miss.
	get("/fresh/page.html")
	r, b := get("/fresh/page.html")
	if b != "fresh page" || !strings.Contains(r.Header.Get("Cache-Status"), "hit") ||
		nginxCount(t, dir, "GET /fresh/page.html 200", 1) != 1 {
		t.Fatalf("hit after miss: %q %q, nginx %d", b, r.Header.Get("Cache-Status"), nginxCount(t, dir, "GET /fresh/page.html 200", 1))
	}

	// Vary: one origin request per variant.
	for _, lang := range []string{"en", "de", "en", "de"} {
		get("/vary/greet.html", "Accept-Language", lang)
	}
	if n := nginxCount(t, dir, "GET /vary/greet.html 200", 2); n != 2 {
		t.Fatalf("Vary: nginx served %d, want 2", n)
	}

	// Revalidation: no-cache with nginx's ETag gives a 304.
	get("/reval/doc.html")
	r, b = get("/reval/doc.html")
	if b != "revalidated doc" || nginxCount(t, dir, "GET /reval/doc.html 304", 1) != 1 ||
		!strings.Contains(r.Header.Get("Cache-Status"), "fwd-status=304") {
		t.Fatalf("revalidation: %q %q, nginx 304s %d", b, r.Header.Get("Cache-Status"), nginxCount(t, dir, "GET /reval/doc.html 304", 1))
	}

	// 100 concurrent misses: one origin request.
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := client.Get(fe + "/fresh/big.bin")
			if err != nil {
				errs <- err
				return
			}
			n, _ := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if n != 1<<20 {
				errs <- fmt.Errorf("%d bytes", n)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := nginxCount(t, dir, "GET /fresh/big.bin 200", 1); n != 1 {
		t.Fatalf("100 concurrent misses made %d origin requests", n)
	}

	// Purge by tag, with the PURGE method from loopback.
	req, _ := http.NewRequest("PURGE", fe+"/", nil)
	req.Header.Set("Surrogate-Key", "fresh-tag")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	pb, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(pb), `"purged":2`) {
		t.Fatalf("PURGE by tag: %d %s", resp.StatusCode, pb)
	}
	get("/fresh/page.html")
	if n := nginxCount(t, dir, "GET /fresh/page.html 200", 2); n != 2 {
		t.Fatalf("after purge: nginx served the page %d times, want 2", n)
	}

	// stale-while-revalidate: the stale copy at once, the new one after.
	get("/swr/news.html")
	time.Sleep(1100 * time.Millisecond)
	os.WriteFile(filepath.Join(dir, "www/swr/news.html"), []byte("news v2"), 0o644)
	if r, b := get("/swr/news.html"); b != "news v1" || !strings.Contains(r.Header.Get("Cache-Status"), "stale-while-revalidate") {
		t.Fatalf("SWR: %q %q", b, r.Header.Get("Cache-Status"))
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, b := get("/swr/news.html"); b == "news v2" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the background refresh never landed")
		}
		time.Sleep(20 * time.Millisecond)
	}

	// The outcomes are on the front-end's metrics endpoint.
	mresp, err := client.Get("http://" + tp.FrontendAdmin(0) + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(mresp.Body)
	mresp.Body.Close()
	for _, m := range []string{
		`conductor_edge_cache_requests_total{outcome="hit",site="shop"}`,
		`conductor_edge_cache_requests_total{outcome="collapsed",site="shop"}`,
		`conductor_edge_cache_origin_fetches_total{kind="revalidate",site="shop"}`,
		`conductor_edge_cache_stored_bytes{cache="e2e",tier="memory"}`,
	} {
		if !strings.Contains(string(metrics), m) {
			t.Errorf("metrics lack %s", m)
		}
	}

	// stale-if-error: nginx stopped, the stored copy is served.
	get("/stale/keep.html")
	if err := tp.StopProc("origin"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond)
	r, b = get("/stale/keep.html")
	if r.StatusCode != 200 || b != "kept through the outage" || !strings.Contains(r.Header.Get("Cache-Status"), "stale-if-error") {
		t.Fatalf("origin stopped: %d %q %q", r.StatusCode, b, r.Header.Get("Cache-Status"))
	}
	if r, _ := get("/never-cached.html"); r.StatusCode < 500 {
		t.Fatalf("uncached with the origin stopped: %d, want a 5xx", r.StatusCode)
	}
}
