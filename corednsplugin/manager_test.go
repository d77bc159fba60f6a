package corednsplugin

import (
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/conductor-edge/conductor/internal/fleettest"
	"github.com/conductor-edge/conductor/internal/nodeid"
	"github.com/conductor-edge/conductor/internal/viewfollow"
)

// fakeManager serves /v1/view with long-poll semantics.
type fakeManager struct {
	wait    time.Duration // how long a long-poll waits for a change; default 5 s
	mu      sync.Mutex
	version uint64
	sites   map[string][]viewfollow.Entry
	changed chan struct{}
}

func (f *fakeManager) set(sites map[string][]viewfollow.Entry) {
	f.mu.Lock()
	f.version++
	f.sites = sites
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
}

func (f *fakeManager) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// The fleet's manager knows its DNS servers by their certificate.
	if len(r.TLS.VerifiedChains) == 0 {
		http.Error(w, "no", http.StatusUnauthorized)
		return
	}
	if id, ok := nodeid.FromCert(r.TLS.VerifiedChains[0][0], "conductor"); !ok || id.Role != "dns" {
		http.Error(w, "not a DNS server", http.StatusForbidden)
		return
	}
	wait, _ := strconv.ParseUint(r.URL.Query().Get("wait"), 10, 64)
	f.mu.Lock()
	ch := f.changed
	same := wait == f.version
	f.mu.Unlock()
	if same {
		wait := f.wait
		if wait == 0 {
			wait = 5 * time.Second
		}
		select {
		case <-ch:
		case <-time.After(wait):
		case <-r.Context().Done():
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	json.NewEncoder(w).Encode(map[string]any{"version": f.version, "sites": f.sites})
}

// managerServer serves h over HTTPS that asks for a fleet certificate,
// and returns the Corefile lines of a DNS server enrolled in that fleet
// (its certificate already in its identity directory).
func managerServer(t *testing.T, h http.Handler) (*httptest.Server, string) {
	t.Helper()
	ca := fleettest.NewCA(t, "test fleet")
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = &tls.Config{ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: ca.Pool()}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	ca.WriteIdentity(t, filepath.Join(dir, "id"), nodeid.ID{Fleet: "conductor", Role: "dns", Name: "dns1"})
	serverCA := filepath.Join(dir, "manager.crt")
	os.WriteFile(serverCA, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644)
	return srv, fmt.Sprintf("manager %s\n\t\tmanager_ca %s\n\t\tmanager_node dns1\n\t\tmanager_identity_dir %s", srv.URL, serverCA, filepath.Join(dir, "id"))
}

func TestManagerModeAnswersWithTheManagersFrontEnds(t *testing.T) {
	fm := &fakeManager{changed: make(chan struct{}), sites: map[string][]viewfollow.Entry{}}
	_, mgr := managerServer(t, fm)
	h := handlerFor(t, `conductor hot.example {
		`+mgr+`
		region 10.1.0.0/16 eu
		answers 3
	}`)
	if err := h.start(); err != nil {
		t.Fatal(err)
	}
	defer h.stop()
	fm.set(map[string][]viewfollow.Entry{"hot.example": {
		{Node: "fe1", Addr: "127.0.0.10", Region: "eu", Healthy: true, Ready: true},
		{Node: "fe2", Addr: "127.0.0.11", Region: "eu", Healthy: true, Ready: false}, // bundle not installed yet
		{Node: "fe3", Addr: "127.0.0.12", Region: "us", Healthy: false, Ready: true},
	}})
	got := func() []string {
		ips := answerIPs(query(t, h, "hot.example", 1, "10.1.0.0/24"))
		slices.Sort(ips)
		return ips
	}
	deadline := time.Now().Add(5 * time.Second)
	for !slices.Equal(got(), []string{"127.0.0.10"}) {
		if time.Now().After(deadline) {
			t.Fatalf("answers %v, want only the healthy, ready fe1", got())
		}
		time.Sleep(10 * time.Millisecond)
	}
	// A placement change reaches the answers through the long-poll.
	fm.set(map[string][]viewfollow.Entry{"hot.example": {
		{Node: "fe1", Addr: "127.0.0.10", Region: "eu", Healthy: true, Ready: true},
		{Node: "fe2", Addr: "127.0.0.11", Region: "eu", Healthy: true, Ready: true},
	}})
	for !slices.Equal(got(), []string{"127.0.0.10", "127.0.0.11"}) {
		if time.Now().After(deadline.Add(5 * time.Second)) {
			t.Fatalf("answers %v after the change", got())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// eventually polls cond until it holds or 5 s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after 5 s: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A view older than manager_max_age is dropped: the plugin answers from its
// static front-ends (else the origin) until a fresh view comes. Before, it
// answered from the last view forever, so a dead or partitioned manager
// left DNS pointing at whatever front-ends it last named.
func TestDNSDropsStaleView(t *testing.T) {
	// The manager's long-poll answers every 200 ms when nothing changes
	// (a real one every 25 s, against a default max age of 75 s).
	fm := &fakeManager{wait: 200 * time.Millisecond, changed: make(chan struct{}), sites: map[string][]viewfollow.Entry{}}
	srv, mgr := managerServer(t, fm)
	h := handlerFor(t, `conductor hot.example {
		frontend static 127.0.0.20
		`+mgr+`
		manager_max_age 1s
		health_check 1h
	}`)
	if err := h.start(); err != nil {
		t.Fatal(err)
	}
	defer h.stop()
	fm.set(map[string][]viewfollow.Entry{"hot.example": {{Node: "fe1", Addr: "127.0.0.10", Healthy: true, Ready: true}}})
	answer := func() string {
		ips := answerIPs(query(t, h, "hot.example", 1, ""))
		if len(ips) != 1 {
			return fmt.Sprint(ips)
		}
		return ips[0]
	}
	eventually(t, "the manager's front-end", func() bool { return answer() == "127.0.0.10" })

	// The manager goes away: its view ages past 1 s.
	srv.CloseClientConnections()
	srv.Close()
	start := time.Now()
	eventually(t, "the static front-end once the view is stale", func() bool { return answer() == "127.0.0.20" })
	if took := time.Since(start); took < time.Second-100*time.Millisecond {
		t.Fatalf("the view was dropped after %v, before its max age", took)
	}
	eventually(t, "coredns_conductor_manager_view_age_seconds ≥ 1", func() bool {
		var m dto.Metric
		h.view.age.Write(&m)
		return m.GetGauge().GetValue() >= 1
	})
}

// With a manager, the plugin is not ready until the first view arrives:
// before it, every answer would ignore the placement.
func TestDNSNotReadyBeforeFirstView(t *testing.T) {
	// Once released, the manager answers at once (a view at version 1).
	fm := &fakeManager{wait: 100 * time.Millisecond, changed: make(chan struct{}), sites: map[string][]viewfollow.Entry{}}
	fm.set(map[string][]viewfollow.Entry{"hot.example": {{Node: "fe1", Addr: "127.0.0.10", Healthy: true, Ready: true}}})
	hold := make(chan struct{})
	_, mgr := managerServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-hold // the manager is slow to answer the first poll
		fm.ServeHTTP(w, r)
	}))
	defer close(hold)
	h := handlerFor(t, `conductor hot.example {
		`+mgr+`
		fallback 127.0.0.99
	}`)
	if err := h.start(); err != nil {
		t.Fatal(err)
	}
	defer h.stop()
	time.Sleep(200 * time.Millisecond)
	if h.Ready() {
		t.Fatal("ready before any view arrived")
	}
	hold <- struct{}{}
	eventually(t, "ready after the first view", h.Ready)
	static := handlerFor(t, `conductor hot.example {
		frontend static 127.0.0.20
	}`)
	if !static.Ready() {
		t.Error("a plugin without a manager is not ready")
	}
}
