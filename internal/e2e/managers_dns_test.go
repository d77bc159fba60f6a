package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/conductor-edge/conductor/internal/enrol"
	"github.com/conductor-edge/conductor/shifting"
)

// leaderOf is the one manager that answers as the leader (200 on its
// state) while every other answers 503, or nil.
func leaderOf(ms ...*managerProc) *managerProc {
	var leader *managerProc
	for _, m := range ms {
		switch code, _ := m.do("GET", "/v1/state", nil); code {
		case 200:
			if leader != nil {
				return nil
			}
			leader = m
		case 503:
		default:
			return nil
		}
	}
	return leader
}

// reportAsNode enrols a front-end at the leader and reports for it every
// 200 ms, to whichever manager leads, holding site's bundle digest, until
// the test ends.
func reportAsNode(t *testing.T, dir string, leader *managerProc, node, addr, site, digest string, ms ...*managerProc) {
	t.Helper()
	id, err := enrol.Load(context.Background(), enrol.Config{Dir: filepath.Join(dir, "identity-"+node), Managers: []string{"https://" + leader.addr},
		Roots: managerClient(dir, nil).Transport.(*http.Transport).TLSClientConfig.RootCAs, JoinToken: joinToken(t, leader, node, addr), Name: node, Role: "frontend"})
	if err != nil {
		t.Fatal(err)
	}
	c := managerClient(dir, id.TLSConfig())
	rep, _ := json.Marshal(shifting.NodeReport{ID: node, Role: "frontend", Region: "local", Addr: addr, Bundles: map[string]string{site: digest}})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			for _, m := range ms {
				if code, _ := m.doAs(c, "", "POST", "/v1/nodes/"+node+"/report", rep); code == 204 {
					break
				}
			}
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() { cancel(); wg.Wait() })
}

// Three managers share etcd, and two CoreDNS servers follow them. Kill the
// leader: within 10 s one of the other two leads and the other follows,
// and both DNS servers answer the same, including a change made through
// the new leader.
func TestManagersAndDNSFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: end-to-end")
	}
	dir := filepath.Join(tmpDir, "managers-dns")
	os.MkdirAll(dir, 0o755)
	etcd := startEtcd(t)
	ms := []*managerProc{startManager(t, dir, etcd), startManager(t, dir, etcd), startManager(t, dir, etcd)}
	var leader *managerProc
	waitUntil(t, 20*time.Second, "one leader of three", func() bool { leader = leaderOf(ms...); return leader != nil })

	const site = "ha-dns.example"
	data, digest, _ := siteBundle(t, nil, site, "1", "", map[string]string{"index.html": "ok"})
	if code, body := leader.do("POST", "/v1/bundles", data, "X-Bundle-Digest", digest); code != 201 {
		t.Fatalf("upload: %d %s", code, body)
	}
	reportAsNode(t, dir, leader, "fe1", "127.0.0.2", site, digest, ms...)
	reportAsNode(t, dir, leader, "fe2", "127.0.0.3", site, digest, ms...)
	waitUntil(t, 10*time.Second, "both front-ends known", func() bool {
		code, body := leader.do("GET", "/v1/state", nil)
		var st shifting.Snapshot
		return code == 200 && json.Unmarshal(body, &st) == nil && st.Nodes["fe1"] != nil && st.Nodes["fe2"] != nil
	})
	for _, n := range []string{"fe1", "fe2"} {
		if code, body := leader.do("POST", "/v1/sites/"+site+"/assign", []byte(`{"node":"`+n+`"}`)); code != 200 {
			t.Fatalf("assign %s: %d %s", n, code, body)
		}
	}

	// Two DNS servers, each given every manager.
	urls := ""
	for _, m := range ms {
		urls += " https://" + m.addr
	}
	var servers []string
	for i := range 2 {
		addr := fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1"))
		node := fmt.Sprintf("dns%d", i+1)
		corefile := filepath.Join(dir, "Corefile."+node)
		os.WriteFile(corefile, []byte(fmt.Sprintf(`%s.:%s {
	conductor {
		manager%s
		manager_ca %s
		manager_node %s
		manager_join %s
		manager_identity_dir %s
		region 127.0.0.0/8 local
		answers 3
		max_load 1000
		ttl 1
	}
}
`, site, port(addr), urls, fleetRoot(dir), node, joinTokenFor(t, leader, node, "dns"), filepath.Join(dir, "identity-"+node))), 0o644)
		startDNS(t, corefile)
		servers = append(servers, addr)
	}
	answer := func(server string) []string { return aRecords(server, site+".", "") }
	both := func(want ...string) bool {
		return slices.Equal(answer(servers[0]), want) && slices.Equal(answer(servers[1]), want)
	}
	waitUntil(t, 20*time.Second, "both DNS servers to answer fe1 and fe2", func() bool { return both("127.0.0.2", "127.0.0.3") })

	killed := time.Now()
	syscall.Kill(-leader.cmd.Process.Pid, syscall.SIGKILL)
	rest := slices.DeleteFunc(slices.Clone(ms), func(m *managerProc) bool { return m == leader })
	var next *managerProc
	waitUntil(t, 30*time.Second, "one of the other two to lead", func() bool { next = leaderOf(rest...); return next != nil })
	took := time.Since(killed)
	t.Logf("a new leader %v after the kill", took.Round(10*time.Millisecond))
	if took > 10*time.Second {
		t.Errorf("the managers agreed after %v; the goal is 10 s", took)
	}
	// A change through the new leader reaches both DNS servers.
	changed := time.Now()
	if code, body := next.do("DELETE", "/v1/sites/"+site+"/assign/fe2", nil); code != 200 && code != 204 {
		t.Fatalf("release fe2 at the new leader: %d %s", code, body)
	}
	waitUntil(t, 10*time.Second, "both DNS servers to answer fe1 alone", func() bool { return both("127.0.0.2") })
	t.Logf("both DNS servers answered the new view %v after the change (%v after the kill)",
		time.Since(changed).Round(10*time.Millisecond), time.Since(killed).Round(10*time.Millisecond))
	for range 20 {
		if a, b := answer(servers[0]), answer(servers[1]); !slices.Equal(a, b) {
			t.Fatalf("the DNS servers disagree: %v and %v", a, b)
		}
	}
}
