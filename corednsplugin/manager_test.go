package corednsplugin

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
)

// fakeManager serves /v1/view with long-poll semantics.
type fakeManager struct {
	mu      sync.Mutex
	version uint64
	sites   map[string][]viewEntry
	changed chan struct{}
}

func (f *fakeManager) set(sites map[string][]viewEntry) {
	f.mu.Lock()
	f.version++
	f.sites = sites
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
}

func (f *fakeManager) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer tok" {
		http.Error(w, "no", http.StatusUnauthorized)
		return
	}
	wait, _ := strconv.ParseUint(r.URL.Query().Get("wait"), 10, 64)
	f.mu.Lock()
	ch := f.changed
	same := wait == f.version
	f.mu.Unlock()
	if same {
		select {
		case <-ch:
		case <-time.After(5 * time.Second):
		case <-r.Context().Done():
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	json.NewEncoder(w).Encode(map[string]any{"version": f.version, "sites": f.sites})
}

func TestManagerModeAnswersWithTheManagersFrontEnds(t *testing.T) {
	fm := &fakeManager{changed: make(chan struct{}), sites: map[string][]viewEntry{}}
	srv := httptest.NewServer(fm)
	defer srv.Close()
	h := handlerFor(t, `conductor hot.example {
		manager `+srv.URL+` tok
		region 10.1.0.0/16 eu
		answers 3
	}`)
	h.start()
	defer h.stop()
	fm.set(map[string][]viewEntry{"hot.example": {
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
	fm.set(map[string][]viewEntry{"hot.example": {
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
