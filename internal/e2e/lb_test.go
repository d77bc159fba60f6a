package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/conductor-edge/conductor/internal/topology"
)

// reverse_proxy's load balancing, health checks and retries work over the
// tmp transport: two back-ends share the load; when one stops, every
// request still succeeds on the other; when it returns, it gets traffic
// again.
func TestLoadBalancingHealthChecksAndRetries(t *testing.T) {
	admin := freeAdminBase(t, 3)
	opts := topology.Options{
		Binary:       binary,
		Dir:          filepath.Join(tmpDir, "lb"),
		OriginAddr:   fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1")),
		BackendTMP:   fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1")),
		MoreBackends: []string{fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1"))},
		Frontends:    []string{fmt.Sprintf("127.0.0.5:%d", freePort(t, "127.0.0.5"))},
		AdminBase:    admin,
		ProxyExtra: `lb_policy round_robin
		lb_try_duration 5s
		lb_try_interval 50ms
		health_uri /
		health_interval 300ms
		health_timeout 1s
		fail_duration 5s`,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tp, err := topology.Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Stop()
	hits := func(n int) map[string]int {
		t.Helper()
		got := map[string]int{}
		for i := 0; i < n; i++ {
			resp, err := client.Get(tp.FrontendURL(0) + "/product/3")
			if err != nil {
				t.Fatalf("request %d: %v", i, err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("request %d: %s", i, resp.Status)
			}
			got[resp.Header.Get("X-Backend")]++
		}
		return got
	}
	if got := hits(40); got["be1"] == 0 || got["be2"] == 0 {
		t.Fatalf("round robin over two back-ends: %v", got)
	}
	if err := tp.StopProc("backend2"); err != nil {
		t.Fatal(err)
	}
	if got := hits(60); got["be1"] != 60 {
		t.Fatalf("with back-end 2 stopped: %v, want all 60 on be1", got)
	}
	if err := tp.StartProc("backend2"); err != nil {
		t.Fatal(err)
	}
	if err := tp.WaitReady(ctx, "http://"+tp.BackendAdminN(1)+"/config/"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if got := hits(20); got["be2"] > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("back-end 2 got no traffic after it came back")
		}
		time.Sleep(200 * time.Millisecond)
	}
}
