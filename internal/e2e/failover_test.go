package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/conductor-edge/conductor/internal/enrol"
	"github.com/conductor-edge/conductor/internal/etcdtest"
	"github.com/conductor-edge/conductor/shifting"
)

// startEtcd runs a real etcd (its embedded server) for the test.
func startEtcd(t *testing.T) string { return etcdtest.Start(t) }

type managerProc struct {
	addr, dir string
	cmd       *exec.Cmd
}

func startManager(t *testing.T, dir, etcd string) *managerProc {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1"))
	cf := filepath.Join(dir, "manager-"+addr+".Caddyfile")
	// Managers that share etcd share the fleet CA too: the same storage.
	os.WriteFile(cf, []byte(fmt.Sprintf(`{
	admin off
	persist_config off
	storage file_system %s
	conductor_manager {
		listen %s
		operator admin admin %s
		state_dir %s
		etcd %s
		interval 200ms
		settle 1h
	}
}
`, filepath.Join(dir, "storage"), addr, e2eAdminKey, filepath.Join(dir, "state-"+addr), etcd)), 0o644)
	cmd := exec.Command(binary, "caddy", "run", "--config", cf, "--adapter", "caddyfile")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	logf, _ := os.Create(filepath.Join(dir, "manager-"+addr+".log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
		logf.Close()
	})
	return &managerProc{addr: addr, dir: dir, cmd: cmd}
}

// fleetRoot is the fleet CA's root, in the managers' shared storage.
func fleetRoot(dir string) string {
	return filepath.Join(dir, "storage", "pki", "authorities", "conductor-conductor", "root.crt")
}

// managerClient trusts the fleet's root, which signed the managers'
// certificates, and presents tc's client certificate if any.
func managerClient(dir string, tc *tls.Config) *http.Client {
	pool := x509.NewCertPool()
	if pem, err := os.ReadFile(fleetRoot(dir)); err == nil {
		pool.AppendCertsFromPEM(pem)
	}
	if tc == nil {
		tc = &tls.Config{}
	}
	tc = tc.Clone()
	tc.RootCAs = pool
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}}
}

// do calls the manager as the admin operator.
func (m *managerProc) do(method, path string, body []byte, hdr ...string) (int, []byte) {
	return m.doAs(managerClient(m.dir, nil), e2eAdminKey, method, path, body, hdr...)
}

func (m *managerProc) doAs(c *http.Client, key, method, path string, body []byte, hdr ...string) (int, []byte) {
	req, _ := http.NewRequest(method, "https://"+m.addr+path, bytes.NewReader(body))
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// Two managers share etcd; one leads. Kill the leader (SIGKILL, no
// goodbye): the other takes over within 10 s with every assignment.
func TestManagerFailoverWithEtcd(t *testing.T) {
	dir := filepath.Join(tmpDir, "failover")
	os.MkdirAll(dir, 0o755)
	etcd := startEtcd(t)
	a, b := startManager(t, dir, etcd), startManager(t, dir, etcd)
	var leader, follower *managerProc
	waitUntil(t, 20*time.Second, "a leader", func() bool {
		ca, _ := a.do("GET", "/v1/state", nil)
		cb, _ := b.do("GET", "/v1/state", nil)
		switch {
		case ca == 200 && cb == 503:
			leader, follower = a, b
		case cb == 200 && ca == 503:
			leader, follower = b, a
		default:
			return false
		}
		return true
	})
	if code, _ := follower.do("POST", "/v1/sites/x/assign", []byte(`{"node":"fe1"}`)); code != 503 {
		t.Fatalf("the follower took a write: %d", code)
	}
	startAgentNode(t, dir, leader, a, b)
	waitUntil(t, 15*time.Second, "fe2's agent to report to the leader", func() bool {
		code, body := leader.do("GET", "/v1/state", nil)
		var st shifting.Snapshot
		return code == 200 && json.Unmarshal(body, &st) == nil && st.Nodes["fe2"] != nil
	})
	// State through the leader: a front-end (enrolled here, as an agent
	// would), a bundle, an assignment.
	id, err := enrol.Load(context.Background(), enrol.Config{Dir: filepath.Join(dir, "identity-fe1"), Managers: []string{"https://" + leader.addr},
		Roots: managerClient(dir, nil).Transport.(*http.Transport).TLSClientConfig.RootCAs, JoinToken: joinToken(t, leader, "fe1", "127.0.0.2"), Name: "fe1", Role: "frontend"})
	if err != nil {
		t.Fatal(err)
	}
	rep, _ := json.Marshal(shifting.NodeReport{ID: "fe1", Role: "frontend", Region: "eu", Addr: "127.0.0.2"})
	if code, body := leader.doAs(managerClient(dir, id.TLSConfig()), "", "POST", "/v1/nodes/fe1/report", rep); code != 204 {
		t.Fatalf("report: %d %s", code, body)
	}
	data, digest, _ := siteBundle(t, nil, "ha.example", "1", "", map[string]string{"index.html": "ok"})
	if code, body := leader.do("POST", "/v1/bundles", data, "X-Bundle-Digest", digest); code != 201 {
		t.Fatalf("upload: %d %s", code, body)
	}
	if code, body := leader.do("POST", "/v1/sites/ha.example/assign", []byte(`{"node":"fe1"}`)); code != 200 {
		t.Fatalf("assign: %d %s", code, body)
	}

	killed := time.Now()
	syscall.Kill(-leader.cmd.Process.Pid, syscall.SIGKILL)
	var st shifting.Snapshot
	waitUntil(t, 30*time.Second, "the follower to take over", func() bool {
		code, body := follower.do("GET", "/v1/state", nil)
		if code != 200 {
			return false
		}
		return json.Unmarshal(body, &st) == nil
	})
	took := time.Since(killed)
	t.Logf("the follower led %v after the leader was killed", took.Round(10*time.Millisecond))
	if took > 10*time.Second {
		t.Errorf("takeover took %v; the goal is 10 s", took)
	}
	s := st.Sites["ha.example"]
	if s == nil || s.Bundle != digest || s.Assigned["fe1"] == nil || !s.Assigned["fe1"].Pinned {
		t.Fatalf("assignment lost in the takeover: %+v", s)
	}
	// The bundle's bytes came through too.
	if code, got := follower.do("GET", "/v1/bundles/"+digest, nil); code != 200 || !bytes.Equal(got, data) {
		t.Fatalf("bundle after takeover: %d, %d bytes", code, len(got))
	}
	// The node's agent, given both managers, reports to the new leader.
	waitUntil(t, 15*time.Second, "fe2's agent to report to the new leader", func() bool {
		code, body := follower.do("GET", "/v1/state", nil)
		var now shifting.Snapshot
		if code != 200 || json.Unmarshal(body, &now) != nil || now.Nodes["fe2"] == nil {
			return false
		}
		return now.Nodes["fe2"].LastSeen.After(killed)
	})
}

// joinToken mints a join token for a front-end at the leader.
func joinToken(t *testing.T, leader *managerProc, node string, hosts ...string) string {
	t.Helper()
	return joinTokenFor(t, leader, node, "frontend", hosts...)
}

// joinTokenFor mints a join token for a node of any role at the leader.
func joinTokenFor(t *testing.T, leader *managerProc, node, role string, hosts ...string) string {
	t.Helper()
	body, _ := json.Marshal(shifting.JoinRequest{Node: node, Role: role, Hosts: hosts})
	code, out := leader.do("POST", "/v1/join-tokens", body)
	var ans shifting.JoinAnswer
	if code != 201 || json.Unmarshal(out, &ans) != nil {
		t.Fatalf("join token: %d %s", code, out)
	}
	return ans.Token
}

// startAgentNode runs a Caddy whose conductor_agent knows the managers,
// enrolled with a join token from the leader.
func startAgentNode(t *testing.T, dir string, leader *managerProc, managers ...*managerProc) {
	t.Helper()
	admin := freePort(t, "127.0.0.1")
	site := freePort(t, "127.0.0.1")
	urls := ""
	for _, m := range managers {
		urls += " https://" + m.addr
	}
	cf := filepath.Join(dir, "agent.Caddyfile")
	os.WriteFile(cf, []byte(fmt.Sprintf(`{
	admin 127.0.0.1:%d
	persist_config off
	storage file_system %s
	conductor_agent {
		manager%s
		join_token %s
		ca_file %s
		identity_dir %s
		node fe2
		region eu
		addr 127.0.0.2
		bundle_dir %s
		interval 200ms
	}
}
http://127.0.0.1:%d {
	respond "fe2"
}
`, admin, filepath.Join(dir, "agent-storage"), urls, joinToken(t, leader, "fe2", "127.0.0.2"), fleetRoot(dir), filepath.Join(dir, "identity-fe2"), filepath.Join(dir, "agent-bundles"), site)), 0o644)
	cmd := exec.Command(binary, "caddy", "run", "--config", cf, "--adapter", "caddyfile")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	logf, _ := os.Create(filepath.Join(dir, "agent.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
		logf.Close()
	})
}
