package shifting

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/conductor-edge/conductor/internal/enrol"
	"github.com/conductor-edge/conductor/internal/fleettest"
)

// Operator keys of a test fleet.
const (
	adminKey = "admin-key-for-tests"
	readKey  = "read-key-for-tests"
)

// testFleet is a manager behind HTTPS that asks for client certificates
// of its fleet CA, as conductor_manager serves it, with an admin and a
// read-only operator.
type testFleet struct {
	t      *testing.T
	m      *Manager
	ca     *fleettest.CA
	srv    *httptest.Server
	admin  client
	reader client
	anon   client
}

func newTestFleet(t *testing.T, cfg Config) *testFleet {
	t.Helper()
	ca := fleettest.NewCA(t, "test fleet root")
	cfg.Issuer = ca
	cfg.Operators = []Operator{{Name: "alice", Role: RoleAdmin, KeyHash: HashKey(adminKey)}, {Name: "grafana", Role: RoleRead, KeyHash: HashKey(readKey)}}
	if cfg.Store == nil {
		cfg.Store = FileStore{Dir: t.TempDir()}
	}
	if cfg.Policy.Interval == 0 {
		cfg.Policy.Interval = 50 * time.Millisecond
	}
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); m.Run(ctx) }()
	srv := httptest.NewUnstartedServer(m)
	srv.TLS = &tls.Config{ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: ca.Pool()}
	srv.StartTLS()
	t.Cleanup(func() { srv.Close(); cancel(); <-done })
	f := &testFleet{t: t, m: m, ca: ca, srv: srv}
	f.admin = client{t, srv.URL, adminKey, srv.Client()}
	f.reader = client{t, srv.URL, readKey, srv.Client()}
	f.anon = client{t, srv.URL, "", srv.Client()}
	return f
}

// serverRoots trusts the manager's server certificate.
func (f *testFleet) serverRoots() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(f.srv.Certificate())
	return p
}

// joinToken mints a join token as the admin.
func (f *testFleet) joinToken(node, role string, hosts ...string) string {
	f.t.Helper()
	body, _ := json.Marshal(JoinRequest{Node: node, Role: role, Hosts: hosts})
	r, b := f.admin.do("POST", "/v1/join-tokens", body)
	if r.StatusCode != http.StatusCreated {
		f.t.Fatalf("minting a join token: %d %s", r.StatusCode, b)
	}
	var ans JoinAnswer
	json.Unmarshal(b, &ans)
	return ans.Token
}

// enrolNode enrols a node with a fresh join token, the way an agent does,
// and returns a client that presents its certificate.
func (f *testFleet) enrolNode(node, role string, hosts ...string) client {
	f.t.Helper()
	id, err := enrol.Load(context.Background(), enrol.Config{Dir: f.t.TempDir(), Managers: []string{f.srv.URL}, Roots: f.serverRoots(),
		JoinToken: f.joinToken(node, role, hosts...), Name: node, Role: role})
	if err != nil {
		f.t.Fatal(err)
	}
	return f.nodeClient(id.TLSConfig())
}

func (f *testFleet) nodeClient(tc *tls.Config) client {
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tc}}
	f.t.Cleanup(hc.CloseIdleConnections)
	return client{f.t, f.srv.URL, "", hc}
}

func postReport(t *testing.T, c client, path string, rep NodeReport) (*http.Response, []byte) {
	t.Helper()
	b, _ := json.Marshal(rep)
	return c.do("POST", path, b)
}

type client struct {
	t     *testing.T
	base  string
	token string
	hc    *http.Client
}

func (c client) do(method, path string, body []byte, hdr ...string) (*http.Response, []byte) {
	c.t.Helper()
	resp, b, err := c.try(method, path, body, hdr...)
	if err != nil {
		c.t.Fatal(err)
	}
	return resp, b
}

func (c client) try(method, path string, body []byte, hdr ...string) (*http.Response, []byte, error) {
	req, _ := http.NewRequest(method, c.base+path, bytes.NewReader(body))
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	hc := c.hc
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	return resp, buf.Bytes(), nil
}
