package e2e

import (
	"bytes"
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

	"github.com/conductor-edge/conductor/internal/etcdtest"
	"github.com/conductor-edge/conductor/shifting"
)

// startEtcd runs a real etcd (its embedded server) for the test.
func startEtcd(t *testing.T) string { return etcdtest.Start(t) }

type managerProc struct {
	addr string
	cmd  *exec.Cmd
}

func startManager(t *testing.T, dir, etcd string) *managerProc {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1"))
	cf := filepath.Join(dir, "manager-"+addr+".Caddyfile")
	os.WriteFile(cf, []byte(fmt.Sprintf(`{
	admin off
	persist_config off
	storage file_system %s
	conductor_manager {
		listen %s
		token %s
		etcd %s
		interval 200ms
		settle 1h
	}
}
`, filepath.Join(dir, "storage-"+addr), addr, managerToken, etcd)), 0o644)
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
	return &managerProc{addr: addr, cmd: cmd}
}

func (m *managerProc) do(method, path string, body []byte, hdr ...string) (int, []byte) {
	req, _ := http.NewRequest(method, "http://"+m.addr+path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+managerToken)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := client.Do(req)
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
	startAgentNode(t, dir, a, b)
	waitUntil(t, 15*time.Second, "fe2's agent to report to the leader", func() bool {
		code, body := leader.do("GET", "/v1/state", nil)
		var st shifting.Snapshot
		return code == 200 && json.Unmarshal(body, &st) == nil && st.Nodes["fe2"] != nil
	})
	// State through the leader: a front-end, a bundle, an assignment.
	rep, _ := json.Marshal(shifting.NodeReport{ID: "fe1", Role: "frontend", Region: "eu", Addr: "127.0.0.2"})
	if code, body := leader.do("POST", "/v1/nodes/fe1/report", rep); code != 204 {
		t.Fatalf("report: %d %s", code, body)
	}
	data, digest := siteBundle(t, "ha.example", "1", `[{"handle": [{"handler": "static_response", "body": "ok"}]}]`, nil)
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

// startAgentNode runs a Caddy whose conductor_agent knows both managers.
func startAgentNode(t *testing.T, dir string, managers ...*managerProc) {
	t.Helper()
	admin := freePort(t, "127.0.0.1")
	site := freePort(t, "127.0.0.1")
	urls := ""
	for _, m := range managers {
		urls += " http://" + m.addr
	}
	cf := filepath.Join(dir, "agent.Caddyfile")
	os.WriteFile(cf, []byte(fmt.Sprintf(`{
	admin 127.0.0.1:%d
	persist_config off
	storage file_system %s
	conductor_agent {
		manager%s
		token %s
		node fe2
		region eu
		addr 127.0.0.2
		admin http://127.0.0.1:%d
		bundle_dir %s
		interval 200ms
	}
}
http://127.0.0.1:%d {
	respond "fe2"
}
`, admin, filepath.Join(dir, "agent-storage"), urls, managerToken, admin, filepath.Join(dir, "agent-bundles"), site)), 0o644)
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
