package e2e

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/conductor-edge/conductor/internal/topology"
	"github.com/conductor-edge/conductor/shifting"
)

// bundleFixture is a shop origin, a back-end, the shifting manager and
// two front-ends whose site block has the operator's handlers around
// `bundle`: priority, a waiting room on /promo/*, and edge_cache.
type bundleFixture struct {
	tp *topology.Topology
}

var (
	bundleOnce sync.Once
	bundleFix  *bundleFixture
	bundleErr  error
)

func bundleSetup(t *testing.T) *bundleFixture {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: end-to-end")
	}
	bundleOnce.Do(func() {
		tp, err := topology.Start(context.Background(), topology.Options{
			Binary:     binary,
			Dir:        filepath.Join(tmpDir, "bundle"),
			OriginAddr: fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1")),
			BackendTMP: fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1")),
			Frontends:  []string{fmt.Sprintf("127.0.0.17:%d", freePort(t, "127.0.0.17")), fmt.Sprintf("127.0.0.18:%d", freePort(t, "127.0.0.18"))},
			AdminBase:  freeAdminBase(t, 3),
			Manager:    fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1")),
			// The tests decide where sites go.
			ManagerExtra: "settle 10m",
			FrontendExtra: "priority {\n\t\t0 cookie cart\n\t}\n\t" +
				"waiting_room /promo/* bundles {\n\t\ttotal_active_users 100\n\t\tnew_users_per_minute 6000\n\t}\n\t" +
				"edge_cache bundles {\n\t\tsite bundles\n\t}",
			Progress: func(f string, a ...any) { t.Logf(f, a...) },
		})
		if err != nil {
			bundleErr = err
			return
		}
		atExit = append(atExit, tp.Stop)
		bundleFix = &bundleFixture{tp: tp}
	})
	if bundleErr != nil {
		t.Fatal(bundleErr)
	}
	return bundleFix
}

var (
	siteRunsMu sync.Mutex
	siteRuns   = map[string]int{}
)

// runSite is base the first time a test asks for it, and a fresh name on
// each later run (go test -count N): a node never takes a bundle version
// for a site twice, so a test that runs again needs another site.
func runSite(base string) string {
	siteRunsMu.Lock()
	defer siteRunsMu.Unlock()
	siteRuns[base]++
	if n := siteRuns[base]; n > 1 {
		return fmt.Sprintf("run%d-%s", n, base)
	}
	return base
}

// managerState is the manager's snapshot.
func managerState(t *testing.T, tp *topology.Topology) shifting.Snapshot {
	t.Helper()
	_, b := managerDo(t, tp, "GET", "/v1/state", nil)
	var st shifting.Snapshot
	json.Unmarshal(b, &st)
	return st
}

// push uploads a bundle and assigns its site to the nodes, once they
// have reported to the manager.
func push(t *testing.T, tp *topology.Topology, data []byte, digest, sig, site string, nodes ...string) {
	t.Helper()
	waitUntil(t, 15*time.Second, "nodes reporting", func() bool {
		st := managerState(t, tp)
		for _, n := range nodes {
			if st.Nodes[n] == nil {
				return false
			}
		}
		return true
	})
	if r, b := pushBundle(t, tp, data, digest, sig); r.StatusCode != 201 {
		t.Fatalf("upload: %d %s", r.StatusCode, b)
	}
	for _, n := range nodes {
		if r, b := managerDo(t, tp, "POST", "/v1/sites/"+site+"/assign", []byte(`{"node": "`+n+`"}`)); r.StatusCode != 200 {
			t.Fatalf("assign %s to %s: %d %s", site, n, r.StatusCode, b)
		}
	}
}

// installed pushes a signed bundle and waits until every node named
// reports it installed.
func installed(t *testing.T, tp *topology.Topology, site, version, rules string, files map[string]string, nodes ...string) string {
	t.Helper()
	data, digest, sig := siteBundle(t, tp.Opts.BundleKey, site, version, rules, files)
	push(t, tp, data, digest, sig, site, nodes...)
	waitInstalled(t, tp, site, digest, nodes...)
	return digest
}

func waitInstalled(t *testing.T, tp *topology.Topology, site, digest string, nodes ...string) {
	t.Helper()
	waitUntil(t, 30*time.Second, site+" installed on "+strings.Join(nodes, ", "), func() bool {
		st := managerState(t, tp)
		for _, n := range nodes {
			if st.Nodes[n] == nil || st.Nodes[n].Report.Bundles[site] != digest {
				return false
			}
		}
		return true
	})
}

// waitFailed waits until node reports a failed install of digest, and
// returns the reason.
func waitFailed(t *testing.T, tp *topology.Topology, node, digest string) string {
	t.Helper()
	var failed string
	waitUntil(t, 15*time.Second, node+" to report "+digest+" refused", func() bool {
		st := managerState(t, tp)
		if st.Nodes[node] != nil {
			failed = st.Nodes[node].Report.Failed
		}
		return strings.Contains(failed, digest)
	})
	return failed
}

// fetch asks front-end i for path on site.
func fetch(t *testing.T, tp *topology.Topology, i int, site, path string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, tp.FrontendURL(i)+path, nil)
	req.Host = site
	for j := 0; j+1 < len(hdr); j += 2 {
		req.Header.Set(hdr[j], hdr[j+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s%s: %v", site, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// A shifted site keeps the front-end's handlers: the bundle's page gets
// the priority a cookie gives it and passes the waiting room; a path the
// bundle does not cover reaches the origin, through the cache. (Before,
// the bundle was a terminal route at routes/0: none of these ran, and
// /product/1 and /nope answered 200 with 0 bytes.)
func TestBundleKeepsFrontEndHandlers(t *testing.T) {
	f := bundleSetup(t)
	site := runSite("keep.example")
	installed(t, f.tp, site, "1", `"cache": [{"path": "/promo/*", "cache_control": "public, max-age=60"}]`,
		map[string]string{"promo/index.html": "promo v1"}, "fe1")

	resp, body := fetch(t, f.tp, 0, site, "/promo/")
	if resp.StatusCode != 200 || body != "promo v1" || resp.Header.Get("Cache-Control") != "public, max-age=60" {
		t.Fatalf("the bundle's page: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	if wr := resp.Header.Get("Conductor-Waiting-Room"); !strings.HasPrefix(wr, "admitted") {
		t.Errorf("the waiting room did not see the bundle's page: Conductor-Waiting-Room %q", wr)
	}
	// A shopper with a cart is priority 0 (and past the waiting room).
	before := frontendMetric(t, f.tp, 0, "conductor_priority_requests_total", `priority="0"`)
	if resp, body = fetch(t, f.tp, 0, site, "/promo/", "Cookie", "cart=3"); body != "promo v1" {
		t.Fatalf("with a cart: %d %q", resp.StatusCode, body)
	}
	if got := frontendMetric(t, f.tp, 0, "conductor_priority_requests_total", `priority="0"`) - before; got != 1 {
		t.Errorf("priority 0 requests: +%v, want +1 (the cart cookie)", got)
	}
	// Not in the bundle: the origin answers, and the cache keeps it.
	resp, body = fetch(t, f.tp, 0, site, "/product/1")
	if resp.StatusCode != 200 || !strings.Contains(body, "served by origin") {
		t.Fatalf("/product/1: %d %q", resp.StatusCode, body)
	}
	resp, _ = fetch(t, f.tp, 0, site, "/product/1")
	if cs := resp.Header.Get("Cache-Status"); !strings.Contains(cs, "hit") {
		t.Errorf("/product/1 again: Cache-Status %q, want a hit", cs)
	}
	if resp, body = fetch(t, f.tp, 0, site, "/nope"); resp.StatusCode != 404 {
		t.Errorf("/nope: %d %q, want the origin's 404", resp.StatusCode, body)
	}
}

// `caddy reload` with the operator's Caddyfile keeps the bundle served,
// without a gap; a restarted node serves it from its local store before
// the manager is back.
func TestBundleSurvivesReload(t *testing.T) {
	f := bundleSetup(t)
	site := runSite("reload.example")
	installed(t, f.tp, site, "1", "", map[string]string{"index.html": "kept"}, "fe2")

	errs := make(chan string, 1)
	stop := loadLoop(1, func() {
		if _, body := hostGet(t, f.tp.FrontendURL(1)+"/", site); body != "kept" {
			select {
			case errs <- body:
			default:
			}
		}
	})
	reload := exec.Command(binary, "caddy", "reload", "--config", f.tp.FrontendConfig(1), "--adapter", "caddyfile",
		"--address", f.tp.FrontendAdmin(1), "--force")
	out, err := reload.CombinedOutput()
	time.Sleep(500 * time.Millisecond)
	stop()
	if err != nil {
		t.Fatalf("caddy reload: %v\n%s", err, out)
	}
	select {
	case body := <-errs:
		t.Fatalf("during the reload, / answered %q", body)
	default:
	}
	// The manager goes; the node restarts; the bundle is served at once.
	if err := f.tp.StopProc("manager"); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := f.tp.StartProc("manager"); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, 20*time.Second, "the manager back", func() bool {
			r, err := f.tp.ManagerClient().Get(f.tp.ManagerURL() + "/status")
			if err == nil {
				r.Body.Close()
			}
			return err == nil
		})
	}()
	if err := f.tp.StopProc("frontend2"); err != nil {
		t.Fatal(err)
	}
	if err := f.tp.StartProc("frontend2"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 20*time.Second, "the restarted node to serve the bundle", func() bool {
		_, body := hostGet(t, f.tp.FrontendURL(1)+"/", site)
		return body == "kept"
	})
}

// A bundle holds no Caddy config: `conductor bundle build` refuses a
// site.json with routes, and so does the manager (and every node, which
// parses the manifest with the same strict reader).
func TestBundleRejectsCaddyJSON(t *testing.T) {
	f := bundleSetup(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "site.json"), []byte(`{"site": "json.example", "version": "1",
  "routes": [{"handle": [{"handler": "reverse_proxy", "upstreams": [{"dial": "localhost:2019"}]}]}]}`), 0o644)
	out, err := exec.Command(binary, "bundle", "build", dir, "-o", filepath.Join(dir, "b.bundle")).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "no Caddy config") {
		t.Fatalf("conductor bundle build: %v %s", err, out)
	}
	for _, manifest := range []string{
		`{"site": "json.example", "version": "1", "routes": [{"handle": [{"handler": "file_server", "root": "/"}]}], "files": {}}`,
		`{"site": "json.example", "version": "1", "handle": [{"handler": "file_server"}], "files": {}}`,
	} {
		data := handMadeBundle(manifest)
		sig := ed25519.Sign(f.tp.Opts.BundleKey, []byte(shifting.Digest(data)))
		r, b := pushBundle(t, f.tp, data, shifting.Digest(data), fmt.Sprintf("%x", sig))
		if r.StatusCode != 422 {
			t.Fatalf("manager took %s: %d %s", manifest, r.StatusCode, b)
		}
	}
	if _, b := managerDo(t, f.tp, "GET", "/v1/state", nil); strings.Contains(string(b), "json.example") {
		t.Fatal("the manager recorded the refused site")
	}
}

// Nodes refuse unsigned bundles, and bundles signed by another key; the
// site goes on to the origin, and a signed bundle is then taken.
func TestUnsignedBundleRefused(t *testing.T) {
	f := bundleSetup(t)
	site := runSite("unsigned.example")
	_, otherKey, _ := ed25519.GenerateKey(nil)
	for i, key := range []ed25519.PrivateKey{nil, otherKey} {
		data, digest, sig := siteBundle(t, key, site, fmt.Sprint(i+1), "", map[string]string{"index.html": "forged"})
		push(t, f.tp, data, digest, sig, site, "fe1")
		reason := waitFailed(t, f.tp, "fe1", digest)
		if !strings.Contains(reason, "refused") {
			t.Errorf("bundle %d refused for %q", i+1, reason)
		}
		if _, body := hostGet(t, f.tp.FrontendURL(0)+"/", site); body == "forged" {
			t.Fatalf("bundle %d is served", i+1)
		}
	}
	installed(t, f.tp, site, "3", "", map[string]string{"index.html": "signed"}, "fe1")
	if _, body := hostGet(t, f.tp.FrontendURL(0)+"/", site); body != "signed" {
		t.Fatalf("the signed bundle: %q", body)
	}
}

// A node never installs an older version than it has (a replayed old
// bundle, say), unless the rollback itself is signed.
func TestBundleRollbackRefused(t *testing.T) {
	f := bundleSetup(t)
	site := runSite("rollback.example")
	key := f.tp.Opts.BundleKey
	installed(t, f.tp, site, "1", "", map[string]string{"index.html": "v1"}, "fe1")
	installed(t, f.tp, site, "2", "", map[string]string{"index.html": "v2"}, "fe1")

	data, digest, sig := siteBundle(t, key, site, "1", "", map[string]string{"index.html": "v1 again"})
	push(t, f.tp, data, digest, sig, site)
	if reason := waitFailed(t, f.tp, "fe1", digest); !strings.Contains(reason, "not newer") {
		t.Errorf("refused for %q", reason)
	}
	if _, body := hostGet(t, f.tp.FrontendURL(0)+"/", site); body != "v2" {
		t.Fatalf("after the refused rollback: %q", body)
	}
	// The same content, built as a signed rollback from version 2.
	data, digest, sig = siteBundleOpts(t, key, site, "1", "", "2", map[string]string{"index.html": "v1 rolled back"})
	push(t, f.tp, data, digest, sig, site)
	waitInstalled(t, f.tp, site, digest, "fe1")
	if _, body := hostGet(t, f.tp.FrontendURL(0)+"/", site); body != "v1 rolled back" {
		t.Fatalf("after the signed rollback: %q", body)
	}
}

// A site with no origin at all: the origin is never started, two
// front-ends serve the site from its bundle, and what it lacks is the
// fallback's 404 page.
func TestOriginlessSite(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: end-to-end")
	}
	dir := filepath.Join(tmpDir, "originless")
	os.MkdirAll(dir, 0o755)
	notFound := filepath.Join(dir, "404.html")
	os.WriteFile(notFound, []byte("no such page here"), 0o644)
	origin := fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1"))
	tp, err := topology.Start(context.Background(), topology.Options{
		Binary:        binary,
		Dir:           dir,
		NoOrigin:      true,
		OriginAddr:    origin,
		BackendTMP:    fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1")),
		Frontends:     []string{fmt.Sprintf("127.0.0.19:%d", freePort(t, "127.0.0.19")), fmt.Sprintf("127.0.0.20:%d", freePort(t, "127.0.0.20"))},
		AdminBase:     freeAdminBase(t, 3),
		Manager:       fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1")),
		ManagerExtra:  "settle 10m",
		FrontendExtra: "fallback {\n\t\tnot_found " + notFound + "\n\t}",
		Progress:      func(f string, a ...any) { t.Logf(f, a...) },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Stop()
	site := runSite("static.example")
	installed(t, tp, site, "1", `"no_origin": true, "headers": [{"path": "*", "set": {"X-Served-By": "bundle"}}]`,
		map[string]string{"index.html": "a site without a server", "about/index.html": "about"}, "fe1", "fe2")
	for i := range 2 {
		for _, c := range []struct{ path, body string }{{"/", "a site without a server"}, {"/about/", "about"}} {
			if resp, body := fetch(t, tp, i, site, c.path); resp.StatusCode != 200 || body != c.body || resp.Header.Get("X-Served-By") != "bundle" {
				t.Fatalf("fe%d %s: %d %q", i+1, c.path, resp.StatusCode, body)
			}
		}
		if resp, body := fetch(t, tp, i, site, "/missing"); resp.StatusCode != 404 || body != "no such page here" {
			t.Fatalf("fe%d /missing: %d %q", i+1, resp.StatusCode, body)
		}
	}
	if c, err := net.DialTimeout("tcp", origin, time.Second); err == nil {
		c.Close()
		t.Fatal("something listens at the origin's address")
	}
}

// fnBundle is a bundle carrying the test function at /fn/*, with its
// VERSION, and a data file.
func fnBundle(t *testing.T, key ed25519.PrivateKey, site, version string) ([]byte, string, string) {
	t.Helper()
	wasm, err := testFunction()
	if err != nil {
		t.Fatal(err)
	}
	code, err := os.ReadFile(wasm)
	if err != nil {
		t.Fatal(err)
	}
	return siteBundle(t, key, site, version,
		`"functions": [{"path": "/fn/*", "module": "functions/fn.wasm", "env": {"VERSION": "v`+version+`"}, "timeout": "5s", "instances": 8, "max_memory": 67108864}]`,
		map[string]string{"functions/fn.wasm": string(code), "data/price.json": `{"price":19.99}`, "index.html": "fn site"})
}

// Version 1 of a function is replaced by version 2 while clients keep
// asking: no request fails, requests in flight finish on v1, and new ones
// start on v2.
func TestEdgeFunctionSwapUnderLoad(t *testing.T) {
	f := bundleSetup(t)
	site := runSite("fn.example")
	data, digest, sig := fnBundle(t, f.tp.Opts.BundleKey, site, "1")
	push(t, f.tp, data, digest, sig, site, "fe1")
	waitInstalled(t, f.tp, site, digest, "fe1")
	if _, body := hostGet(t, f.tp.FrontendURL(0)+"/fn/hello?name=a", site); !strings.Contains(body, `"version":"v1"`) {
		t.Fatalf("v1: %q", body)
	}

	// Slow calls that start on v1 before the swap.
	slow := make(chan string, 4)
	for range cap(slow) {
		go func() {
			code, body := hostGet(t, f.tp.FrontendURL(0)+"/fn/sleep?d=1500ms", site)
			slow <- fmt.Sprint(code, " ", body)
		}()
	}
	time.Sleep(200 * time.Millisecond)

	var mu sync.Mutex
	var total, failed int
	var failures []string
	stop := loadLoop(4, func() {
		code, body := hostGet(t, f.tp.FrontendURL(0)+"/fn/hello?name=load", site)
		mu.Lock()
		defer mu.Unlock()
		total++
		if code != 200 || !strings.Contains(body, `"hello":"load"`) {
			failed++
			if len(failures) < 5 {
				failures = append(failures, fmt.Sprint(code, " ", body))
			}
		}
	})
	data, digest2, sig := fnBundle(t, f.tp.Opts.BundleKey, site, "2")
	push(t, f.tp, data, digest2, sig, site)
	waitInstalled(t, f.tp, site, digest2, "fe1")
	// Once installed, every new request is v2's.
	for range 20 {
		if _, body := hostGet(t, f.tp.FrontendURL(0)+"/fn/hello?name=b", site); !strings.Contains(body, `"version":"v2"`) {
			t.Fatalf("after the swap: %q", body)
		}
	}
	time.Sleep(300 * time.Millisecond)
	stop()
	for range cap(slow) {
		if got := <-slow; !strings.HasPrefix(got, "200 ") || !strings.Contains(got, `"version":"v1"`) {
			t.Errorf("a call in flight during the swap: %q, want v1's 200", got)
		}
	}
	t.Logf("%d requests during the swap, %d failed", total, failed)
	if failed > 0 || total == 0 {
		t.Fatalf("%d of %d requests failed: %q", failed, total, failures)
	}
}

// A function keeps answering with the origin stopped: it runs at the
// front-end, and its data came with its bundle.
func TestEdgeFunctionServesWithOriginDown(t *testing.T) {
	f := bundleSetup(t)
	site := runSite("fn-alone.example")
	data, digest, sig := fnBundle(t, f.tp.Opts.BundleKey, site, "1")
	push(t, f.tp, data, digest, sig, site, "fe2")
	waitInstalled(t, f.tp, site, digest, "fe2")
	if err := f.tp.StopProc("origin"); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := f.tp.StartProc("origin"); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, 10*time.Second, "the origin back", func() bool {
			code, _ := hostGet(t, "http://"+f.tp.Opts.OriginAddr+"/", "shop.example")
			return code == 200
		})
	}()
	if code, body := hostGet(t, f.tp.FrontendURL(1)+"/product/1", site); code < 500 {
		t.Fatalf("the origin is still up: %d %q", code, body)
	}
	for i := range 50 {
		if code, body := hostGet(t, f.tp.FrontendURL(1)+"/fn/hello?name=alone", site); code != 200 || !strings.Contains(body, `"hello":"alone"`) {
			t.Fatalf("request %d with the origin down: %d %q", i, code, body)
		}
	}
	if code, body := hostGet(t, f.tp.FrontendURL(1)+"/fn/data?f=price.json", site); code != 200 || body != `{"price":19.99}` {
		t.Fatalf("the function's data with the origin down: %d %q", code, body)
	}
}
