package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/conductor-edge/conductor/internal/topology"
)

// The manager assigns back-ends to a site and the front-end follows,
// live: a second back-end is assigned under load, the first is released,
// and no request fails; requests in flight on the first finish there.
func TestBackendAssignmentFollowed(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: end-to-end")
	}
	tp, err := topology.Start(context.Background(), topology.Options{
		Binary:           binary,
		Dir:              filepath.Join(tmpDir, "backends"),
		OriginAddr:       fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1")),
		BackendTMP:       fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1")),
		MoreBackends:     []string{fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1"))},
		Frontends:        []string{fmt.Sprintf("127.0.0.23:%d", freePort(t, "127.0.0.23"))},
		AdminBase:        freeAdminBase(t, 3),
		Manager:          fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1")),
		ManagerExtra:     "settle 10m",
		DynamicUpstreams: true,
		Progress:         func(f string, a ...any) { t.Logf(f, a...) },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Stop()
	const site = "shop.example"
	waitUntil(t, 15*time.Second, "the back-ends and the front-end reporting", func() bool {
		st := managerState(t, tp)
		return st.Nodes["be1"] != nil && st.Nodes["be2"] != nil && st.Nodes["fe1"] != nil && st.Nodes["be2"].Report.Upstream != ""
	})
	backendOf := func(path string) (string, int, error) {
		req, _ := http.NewRequest(http.MethodGet, tp.FrontendURL(0)+path, nil)
		req.Host = site
		resp, err := client.Do(req)
		if err != nil {
			return "", 0, err
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		return resp.Header.Get("X-Backend"), resp.StatusCode, nil
	}
	assign := func(method, path string, body string) {
		t.Helper()
		if r, b := managerDo(t, tp, method, path, []byte(body)); r.StatusCode >= 300 {
			t.Fatalf("%s %s: %d %s", method, path, r.StatusCode, b)
		}
	}
	// Only be2 is assigned: the front-end leaves its fallback (be1) for it.
	assign("POST", "/v1/sites/"+site+"/backends", `{"node": "be2"}`)
	waitUntil(t, 10*time.Second, "requests to reach be2", func() bool { b, _, _ := backendOf("/whoami"); return b == "be2" })
	assign("POST", "/v1/sites/"+site+"/backends", `{"node": "be1"}`)
	assign("DELETE", "/v1/sites/"+site+"/backends/be2", "")
	waitUntil(t, 10*time.Second, "requests to reach be1 alone", func() bool {
		for range 10 {
			if b, _, _ := backendOf("/whoami"); b != "be1" {
				return false
			}
		}
		return true
	})

	// Load on be1; slow requests in flight on it.
	var mu sync.Mutex
	seen := map[string]int{}
	var failures []string
	record := func(b string, code int, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err != nil || code != 200 {
			failures = append(failures, fmt.Sprint(code, " ", err))
			return
		}
		seen[b]++
	}
	slow := make(chan string, 4)
	for range cap(slow) {
		go func() {
			b, code, err := backendOf("/slow?d=2s")
			slow <- fmt.Sprint(b, " ", code, " ", err)
		}()
	}
	stop := loadLoop(6, func() { record(backendOf("/whoami")) })
	time.Sleep(500 * time.Millisecond)
	// A second back-end, then the first released.
	assign("POST", "/v1/sites/"+site+"/backends", `{"node": "be2"}`)
	waitUntil(t, 10*time.Second, "be2 to take requests", func() bool { mu.Lock(); defer mu.Unlock(); return seen["be2"] > 0 })
	assign("DELETE", "/v1/sites/"+site+"/backends/be1", "")
	released := time.Now()
	waitUntil(t, 10*time.Second, "be1 to leave", func() bool {
		for range 10 {
			if b, _, _ := backendOf("/whoami"); b != "be2" {
				return false
			}
		}
		return true
	})
	t.Logf("be1 out of the front-end's choices %v after its release", time.Since(released).Round(time.Millisecond))
	time.Sleep(500 * time.Millisecond)
	stop()
	for range cap(slow) {
		if got := <-slow; !strings.HasPrefix(got, "be1 200 ") {
			t.Errorf("a request in flight on be1 when it was released: %q", got)
		}
	}
	t.Logf("requests under load: %v, failed: %d", seen, len(failures))
	if len(failures) > 0 || seen["be1"] == 0 || seen["be2"] == 0 {
		t.Fatalf("%d requests failed (%q); by back-end %v", len(failures), failures, seen)
	}
	// The status page's state shows the assignment.
	if st := managerState(t, tp); st.Sites[site] == nil || st.Sites[site].Backends["be2"] == nil || st.Sites[site].Backends["be1"] != nil {
		t.Fatalf("the manager's back-ends for %s: %+v", site, st.Sites[site])
	}
}
