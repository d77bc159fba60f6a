package shifting

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/conductor-edge/conductor/internal/enrol"
	"github.com/conductor-edge/conductor/internal/fleettest"
	"github.com/conductor-edge/conductor/internal/nodeid"
)

// TestReportCannotImpersonateNode: a node's certificate decides what it
// may report. Another node's ID, another role, an address not pinned at
// enrolment, a certificate from another CA, an operator key, a revoked
// node: all refused, and the DNS view never shows what they claimed.
func TestReportCannotImpersonateNode(t *testing.T) {
	f := newTestFleet(t, Config{})
	fe1 := f.enrolNode("fe1", "frontend", "127.0.0.2")
	fe2 := f.enrolNode("fe2", "frontend", "127.0.0.3")
	be1 := f.enrolNode("be1", "backend", "127.0.0.4")
	honest := NodeReport{ID: "fe1", Role: "frontend", Region: "eu", Addr: "127.0.0.2", Probe: "127.0.0.2:8080"}
	if r, b := postReport(t, fe1, "/v1/nodes/fe1/report", honest); r.StatusCode != 204 {
		t.Fatalf("fe1's own report: %d %s", r.StatusCode, b)
	}
	evil := honest
	evil.Addr = "192.0.2.66"
	cases := []struct {
		name string
		as   client
		path string
		rep  NodeReport
		want int
	}{
		{"fe2 at fe1's path", fe2, "/v1/nodes/fe1/report", evil, 403},
		{"fe2 at its path, naming fe1", fe2, "/v1/nodes/fe2/report", evil, 400},
		{"fe1 with an address it was not given", fe1, "/v1/nodes/fe1/report", evil, 403},
		{"fe1 with a probe it was not given", fe1, "/v1/nodes/fe1/report", NodeReport{ID: "fe1", Role: "frontend", Addr: "127.0.0.2", Probe: "192.0.2.66:80"}, 403},
		{"a back-end as a front-end", be1, "/v1/nodes/be1/report", NodeReport{ID: "be1", Role: "frontend", Addr: "127.0.0.4"}, 403},
		{"an admin operator", f.admin, "/v1/nodes/fe1/report", evil, 403},
		{"nobody", f.anon, "/v1/nodes/fe1/report", evil, 401},
	}
	for _, c := range cases {
		if r, b := postReport(t, c.as, c.path, c.rep); r.StatusCode != c.want {
			t.Errorf("%s: %d %s, want %d", c.name, r.StatusCode, b, c.want)
		}
	}
	// fe2 cannot read fe1's assignments or pull a site for it either.
	if r, _ := fe2.do("GET", "/v1/nodes/fe1/assignments", nil); r.StatusCode != 403 {
		t.Errorf("fe2 reading fe1's assignments: %d", r.StatusCode)
	}
	// A certificate with fe1's name from another CA does not get through
	// the handshake (or, if the client sends none, gets a 401).
	rogue := fleettest.NewCA(t, "rogue root")
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	chain, _, _ := rogue.Issue(&key.PublicKey, nodeid.ID{Fleet: "conductor", Role: "frontend", Name: "fe1", Hosts: []string{"192.0.2.66"}}, time.Hour)
	forged := f.nodeClient(&tls.Config{RootCAs: f.serverRoots(), Certificates: []tls.Certificate{{Certificate: chain, PrivateKey: key}}})
	if r, _, err := forged.try("POST", "/v1/nodes/fe1/report", mustJSON(evil)); err == nil && r.StatusCode != 401 {
		t.Errorf("a certificate from another CA: %d", r.StatusCode)
	}
	// A revoked node is refused from then on.
	if r, b := f.admin.do("DELETE", "/v1/nodes/fe2", nil); r.StatusCode != 204 {
		t.Fatalf("revoke: %d %s", r.StatusCode, b)
	}
	if r, _ := postReport(t, fe2, "/v1/nodes/fe2/report", NodeReport{ID: "fe2", Role: "frontend", Addr: "127.0.0.3"}); r.StatusCode != 401 {
		t.Errorf("revoked fe2's report: %d, want 401", r.StatusCode)
	}
	// The manager's view holds fe1 with its pinned address, and nothing else.
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if n := f.m.state.Nodes["fe1"]; n == nil || n.Report.Addr != "127.0.0.2" || len(f.m.state.Nodes) != 1 {
		t.Fatalf("nodes after the attempts: %+v", f.m.state.Nodes)
	}
}

func mustJSON(v any) []byte { b, _ := json.Marshal(v); return b }

// TestJoinTokenIsSingleUse: a join token enrols one node once. Used again
// (even after the manager restarts), expired, or shown as an operator key,
// it is refused; only an admin can mint one; the enrolled node restarts
// from its stored certificate without the token.
func TestJoinTokenIsSingleUse(t *testing.T) {
	store := FileStore{Dir: t.TempDir()}
	f := newTestFleet(t, Config{Store: store})
	tok := f.joinToken("fe1", "frontend", "127.0.0.2")
	dir := t.TempDir()
	cfg := enrol.Config{Dir: dir, Managers: []string{f.srv.URL}, Roots: f.serverRoots(), JoinToken: tok, Name: "fe1", Role: "frontend"}
	id, err := enrol.Load(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := nodeid.FromCert(id.Certificate().Leaf, "conductor"); got.Name != "fe1" || got.Role != "frontend" || !got.Claims("127.0.0.2") || got.Claims("127.0.0.3") {
		t.Fatalf("enrolled identity %+v", got)
	}
	// The same token for a second enrolment (another machine that read it).
	cfg2 := cfg
	cfg2.Dir = t.TempDir()
	if _, err := enrol.Load(context.Background(), cfg2); err == nil || !strings.Contains(err.Error(), "unknown or used") {
		t.Fatalf("second use of the token: %v", err)
	}
	// The used token is gone from the stored state: a restarted manager
	// refuses it too.
	m2, err := New(Config{Store: store, Issuer: f.ca})
	if err != nil {
		t.Fatal(err)
	}
	if len(m2.state.JoinTokens) != 0 {
		t.Fatalf("stored state still holds %d join tokens", len(m2.state.JoinTokens))
	}
	// The node itself restarts from its stored certificate; the token is
	// not sent again (it would be refused).
	again, err := enrol.Load(context.Background(), cfg)
	if err != nil || !again.Certificate().Leaf.Equal(id.Certificate().Leaf) {
		t.Fatalf("restart from the stored certificate: %v", err)
	}
	// An expired token is refused, and used up by the attempt.
	body, _ := json.Marshal(JoinRequest{Node: "fe3", Role: "frontend", TTL: "1ms"})
	_, b := f.admin.do("POST", "/v1/join-tokens", body)
	var short JoinAnswer
	json.Unmarshal(b, &short)
	time.Sleep(10 * time.Millisecond)
	cfg3 := enrol.Config{Dir: t.TempDir(), Managers: []string{f.srv.URL}, Roots: f.serverRoots(), JoinToken: short.Token, Name: "fe3", Role: "frontend"}
	if _, err := enrol.Load(context.Background(), cfg3); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("expired token: %v", err)
	}
	// A join token is no operator key, and a reader cannot mint one.
	if r, _ := (client{t, f.srv.URL, f.joinToken("fe4", "frontend"), f.srv.Client()}).do("GET", "/v1/state", nil); r.StatusCode != 401 {
		t.Errorf("a join token as an operator key: %d", r.StatusCode)
	}
	if r, _ := f.reader.do("POST", "/v1/join-tokens", mustJSON(JoinRequest{Node: "x", Role: "frontend"})); r.StatusCode != 403 {
		t.Errorf("a reader minting a join token: %d", r.StatusCode)
	}
	// Malformed requests are refused with a reason.
	for _, bad := range []JoinRequest{{Node: "../etc", Role: "frontend"}, {Node: "a", Role: "root"}, {Node: "a", Role: "dns", Hosts: []string{"http://x/"}}, {Node: "a", Role: "dns", TTL: "48h"}} {
		if r, _ := f.admin.do("POST", "/v1/join-tokens", mustJSON(bad)); r.StatusCode != 400 {
			t.Errorf("join token %+v: %d", bad, r.StatusCode)
		}
	}
}

// TestStatusPageNeedsReadRole: the state behind the status page needs an
// operator key with the read role; read cannot change anything; nodes
// cannot read the state; the page's HTML holds no data and is open.
func TestStatusPageNeedsReadRole(t *testing.T) {
	f := newTestFleet(t, Config{})
	fe1 := f.enrolNode("fe1", "frontend", "127.0.0.2")
	f.joinToken("fe9", "frontend") // an outstanding token: its hash must not show
	if r, _ := f.anon.do("GET", "/v1/state", nil); r.StatusCode != 401 {
		t.Errorf("state without a key: %d", r.StatusCode)
	}
	r, b := f.reader.do("GET", "/v1/state", nil)
	if r.StatusCode != 200 || !strings.Contains(string(b), `"fe9"`) || strings.Contains(string(b), `"hash"`) {
		t.Errorf("state with the read key: %d %s", r.StatusCode, b)
	}
	if r, _ := fe1.do("GET", "/v1/state", nil); r.StatusCode != 403 {
		t.Errorf("state with a node certificate: %d", r.StatusCode)
	}
	for _, w := range []struct{ method, path, body string }{
		{"POST", "/v1/bundles", "x"},
		{"POST", "/v1/sites/shop.example/assign", `{"node":"fe1"}`},
		{"DELETE", "/v1/sites/shop.example/assign/fe1", ""},
		{"DELETE", "/v1/nodes/fe1", ""},
		{"POST", "/v1/join-tokens", `{"node":"x","role":"frontend"}`},
	} {
		if r, _ := f.reader.do(w.method, w.path, []byte(w.body)); r.StatusCode != 403 {
			t.Errorf("reader %s %s: %d, want 403", w.method, w.path, r.StatusCode)
		}
	}
	if r, _ := f.admin.do("GET", "/v1/state", nil); r.StatusCode != 200 {
		t.Errorf("state with the admin key: %d", r.StatusCode)
	}
	if r, _ := f.reader.do("GET", "/v1/view", nil); r.StatusCode != 200 {
		t.Errorf("view with the read key: %d", r.StatusCode)
	}
	r, b = f.anon.do("GET", "/status", nil)
	if r.StatusCode != 200 || !strings.Contains(string(b), "/v1/state") || strings.Contains(string(b), "fe1") {
		t.Errorf("status page HTML: %d", r.StatusCode)
	}
}

// A node renews its certificate with itself: same name, role and pinned
// addresses, a new key, and no join token.
func TestNodeRenewsItsCertificate(t *testing.T) {
	f := newTestFleet(t, Config{CertLifetime: 2 * time.Second})
	id, err := enrol.Load(context.Background(), enrol.Config{Dir: t.TempDir(), Managers: []string{f.srv.URL}, Roots: f.serverRoots(),
		JoinToken: f.joinToken("fe1", "frontend", "127.0.0.2"), Name: "fe1", Role: "frontend"})
	if err != nil {
		t.Fatal(err)
	}
	old := id.Certificate().Leaf
	// Two seconds are less than a third of its life (the minute it is
	// backdated counts): it renews now.
	if err := id.MaybeRenew(context.Background()); err != nil {
		t.Fatal(err)
	}
	cur := id.Certificate().Leaf
	got, _ := nodeid.FromCert(cur, "conductor")
	if cur.SerialNumber.Cmp(old.SerialNumber) == 0 || got.Name != "fe1" || got.Role != "frontend" || !got.Claims("127.0.0.2") {
		t.Fatalf("renewed certificate: serial %v (old %v), identity %+v", cur.SerialNumber, old.SerialNumber, got)
	}
	if r, b := postReport(t, f.nodeClient(id.TLSConfig()), "/v1/nodes/fe1/report", NodeReport{ID: "fe1", Role: "frontend", Addr: "127.0.0.2"}); r.StatusCode != 204 {
		t.Fatalf("report with the renewed certificate: %d %s", r.StatusCode, b)
	}
}

// At most maxJoinTokens join tokens are outstanding; past that, minting
// answers 429 until some are used or expire.
func TestJoinTokensAreBounded(t *testing.T) {
	m, err := New(Config{Store: FileStore{Dir: t.TempDir()}, Operators: []Operator{{Name: "a", Role: RoleAdmin, KeyHash: HashKey(adminKey)}}})
	if err != nil {
		t.Fatal(err)
	}
	mint := func() int {
		req := httptest.NewRequest(http.MethodPost, "/v1/join-tokens", strings.NewReader(`{"node":"fe1","role":"frontend"}`))
		req.Header.Set("Authorization", "Bearer "+adminKey)
		rec := httptest.NewRecorder()
		m.ServeHTTP(rec, req)
		return rec.Code
	}
	for i := range maxJoinTokens {
		if c := mint(); c != http.StatusCreated {
			t.Fatalf("token %d: %d", i, c)
		}
	}
	if c := mint(); c != http.StatusTooManyRequests {
		t.Fatalf("token %d: %d, want 429", maxJoinTokens+1, c)
	}
}
