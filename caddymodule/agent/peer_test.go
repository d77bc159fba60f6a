package agent

import (
	"context"
	"crypto/tls"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/conductor-edge/conductor/caddymodule/bundle"
	"github.com/conductor-edge/conductor/internal/enrol"
	"github.com/conductor-edge/conductor/internal/fleettest"
	"github.com/conductor-edge/conductor/internal/nodeid"
)

// identity is a node enrolled in ca's fleet (its certificate on disk).
func identity(t *testing.T, ca *fleettest.CA, name, role string, hosts ...string) *enrol.Identity {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	ca.WriteIdentity(t, dir, nodeid.ID{Fleet: "conductor", Role: role, Name: name, Hosts: hosts})
	id, err := enrol.Load(context.Background(), enrol.Config{Dir: dir, Name: name, Role: role})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// Peers hand each other bundles over mutual TLS: a front-end of the fleet
// gets the bytes; no certificate, a certificate of another CA, another
// role, or plain HTTP gets nothing. Before, any client that named a digest
// got the bundle over plain HTTP on the site's own port.
func TestPeersFetchOverMutualTLS(t *testing.T) {
	ca := fleettest.NewCA(t, "fleet")
	fe1 := identity(t, ca, "fe1", "frontend", "127.0.0.1")
	w := newWorker(workerConfig{id: fe1, fleet: "conductor"}, bundle.NewStore(t.TempDir(), zap.NewNop()), zap.NewNop())
	digest := "sha256:" + "ab"
	os.MkdirAll(filepath.Dir(w.rawPath(digest)), 0o755)
	os.WriteFile(w.rawPath(digest), []byte("bundle bytes"), 0o644)
	p, err := startPeerServer("127.0.0.1:0", fe1, "conductor", w)
	if err != nil {
		t.Fatal(err)
	}
	defer p.stop()
	url := "https://" + p.addr + peerPath + digest

	get := func(id *enrol.Identity) (int, string) {
		c := peerClient(id)
		defer c.CloseIdleConnections()
		resp, err := c.Get(url)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b := make([]byte, 64)
		n, _ := resp.Body.Read(b)
		return resp.StatusCode, string(b[:n])
	}
	if code, body := get(identity(t, ca, "fe2", "frontend", "127.0.0.3")); code != 200 || body != "bundle bytes" {
		t.Fatalf("a front-end of the fleet: %d %q", code, body)
	}
	for name, id := range map[string]*enrol.Identity{
		"a DNS server of the fleet":    identity(t, ca, "dns1", "dns"),
		"a back-end of the fleet":      identity(t, ca, "be1", "backend"),
		"a front-end of another fleet": identity(t, fleettest.NewCA(t, "other"), "fe9", "frontend", "127.0.0.1"),
	} {
		if code, body := get(id); code == 200 {
			t.Errorf("%s got the bundle: %q", name, body)
		}
	}
	// No certificate at all (the server's is trusted: only the client's
	// is missing).
	if resp, err := (&http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: fe1.FleetRoots()}}}).Get(url); err == nil {
		resp.Body.Close()
		t.Errorf("no client certificate: %d", resp.StatusCode)
	} else if !strings.Contains(err.Error(), "certificate required") {
		t.Errorf("no client certificate: %v, want the server to require one", err)
	}
	if resp, err := http.Get("http://" + p.addr + peerPath + digest); err == nil {
		b := make([]byte, 64)
		n, _ := resp.Body.Read(b)
		resp.Body.Close()
		if string(b[:n]) == "bundle bytes" {
			t.Errorf("plain HTTP got the bundle")
		}
	}
}
