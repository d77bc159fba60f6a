package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/conductor-edge/conductor/internal/topology"
	"github.com/conductor-edge/conductor/shifting"
)

// Two regions, loaded unevenly: the manager gives the hot site another
// front-end in the hot region, DNS answers include it, and once the load
// is gone it is released after the hysteresis period.
func TestPlacementFollowsDemandIntoDNS(t *testing.T) {
	dir := filepath.Join(tmpDir, "placement")
	admin := freeAdminBase(t, 4)
	fes := []string{
		fmt.Sprintf("127.0.0.10:%d", freePort(t, "127.0.0.10")), // eu
		fmt.Sprintf("127.0.0.11:%d", freePort(t, "127.0.0.11")), // eu, idle
		fmt.Sprintf("127.0.0.12:%d", freePort(t, "127.0.0.12")), // us
	}
	tp, err := topology.Start(context.Background(), topology.Options{
		Binary:          binary,
		Dir:             dir,
		OriginAddr:      fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1")),
		BackendTMP:      fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1")),
		Frontends:       fes,
		FrontendRegions: []string{"eu", "eu", "us"},
		AdminBase:       admin,
		Manager:         fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1")),
		// Every node here shares one machine, whose load average says
		// nothing about any one of them: load limits are set out of reach.
		ManagerExtra: "target_rps 20\n\t\tmax_load 1000\n\t\tsettle 2s\n\t\thysteresis 8s\n\t\tinterval 500ms",
		Progress:     func(f string, a ...any) { t.Logf(f, a...) },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Stop()
	const site = "hot.example"
	data, digest, sig := siteBundle(t, tp.Opts.BundleKey, site, "1", "", map[string]string{"index.html": "hot"})
	if r, b := pushBundle(t, tp, data, digest, sig); r.StatusCode != 201 {
		t.Fatalf("upload: %d %s", r.StatusCode, b)
	}
	waitUntil(t, 10*time.Second, "three front-ends reporting", func() bool {
		_, b := managerDo(t, tp, "GET", "/v1/state", nil)
		var st shifting.Snapshot
		json.Unmarshal(b, &st)
		n := 0
		for _, node := range st.Nodes {
			if node.Report.Role == "frontend" {
				n++
			}
		}
		return n == 3
	})
	// The operator places the site in each region.
	for _, n := range []string{"fe1", "fe3"} {
		if r, b := managerDo(t, tp, "POST", "/v1/sites/"+site+"/assign", []byte(`{"node": "`+n+`"}`)); r.StatusCode != 200 {
			t.Fatalf("assign %s: %d %s", n, r.StatusCode, b)
		}
	}

	// DNS follows the manager: eu and us clients by ECS.
	dnsAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1"))
	corefile := filepath.Join(dir, "Corefile.manager")
	dnsToken, err := tp.JoinToken("dns1", "dns")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(corefile, []byte(fmt.Sprintf(`%s.:%s {
	conductor {
		manager %s
		manager_ca %s
		manager_node dns1
		manager_join %s
		manager_identity_dir %s
		region 10.1.0.0/16 eu
		region 10.2.0.0/16 us
		answers 3
		max_load 1000
		ttl 1
	}
}
`, site, port(dnsAddr), tp.ManagerURL(), tp.ManagerCA(), dnsToken, filepath.Join(dir, "identity-dns1"))), 0o644)
	startDNS(t, corefile)
	answer := func(subnet string) []string { return aRecords(dnsAddr, site+".", subnet) }
	// Each region's clients get their region's front-ends.
	waitUntil(t, 15*time.Second, "DNS to answer eu with fe1 and us with fe3", func() bool {
		return slices.Equal(answer("10.1.0.0/24"), []string{"127.0.0.10"}) && slices.Equal(answer("10.2.0.0/24"), []string{"127.0.0.12"})
	})

	// Load: eu hot (60 req/s on fe1), us light (3 req/s on fe3).
	ctx, stopLoad := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	load := func(fe string, rps int) {
		defer wg.Done()
		tick := time.NewTicker(time.Second / time.Duration(rps))
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				hostGet(t, "http://"+fe+"/", site)
			}
		}
	}
	wg.Add(2)
	go load(fes[0], 60)
	go load(fes[2], 3)
	loaded := time.Now()
	waitUntil(t, 60*time.Second, "an extra front-end for the hot site in DNS", func() bool {
		return slices.Contains(answer("10.1.0.0/24"), "127.0.0.11")
	})
	t.Logf("fe2 (eu) in DNS answers %v after the load began", time.Since(loaded).Round(100*time.Millisecond))
	_, b := managerDo(t, tp, "GET", "/v1/state", nil)
	var st shifting.Snapshot
	json.Unmarshal(b, &st)
	var reason string
	for _, d := range st.Decisions {
		if d.Node == "fe2" && d.Action == "assign" && d.By == "placement" {
			reason = d.Reason
		}
	}
	if reason == "" {
		t.Fatalf("no placement decision for fe2 in %+v", st.Decisions)
	}
	t.Logf("decision: %s", reason)

	// The load stops: fe2 leaves after the hysteresis period, not before.
	stopLoad()
	wg.Wait()
	idle := time.Now()
	waitUntil(t, 60*time.Second, "the extra front-end to be released", func() bool {
		return !slices.Contains(answer("10.1.0.0/24"), "127.0.0.11")
	})
	if waited := time.Since(idle); waited < 8*time.Second {
		t.Fatalf("released %v after the load stopped, before the 8 s hysteresis", waited)
	}
	t.Logf("fe2 released %v after the load stopped", time.Since(idle).Round(100*time.Millisecond))
	if eu, us := answer("10.1.0.0/24"), answer("10.2.0.0/24"); !slices.Equal(eu, []string{"127.0.0.10"}) || !slices.Equal(us, []string{"127.0.0.12"}) {
		t.Fatalf("the operator's front-ends after the release: eu %v, us %v", eu, us)
	}
}

func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}
