package shifting

import (
	"bytes"
	"image/png"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/conductor-edge/conductor/internal/chromium"
)

// TestStatusPageShowsTopologySitesAndDecisions: the status page, in a
// real browser, shows every node with its load, the sites, who serves
// them and through which back-ends, each front-end's admission lease, and
// the recent decisions with their reasons.
func TestStatusPageShowsTopologySitesAndDecisions(t *testing.T) {
	bin := chromium.Find(t)
	m, err := New(Config{Operators: []Operator{{Name: "viewer", Role: RoleRead, KeyHash: HashKey("tok")}}, Store: FileStore{Dir: t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	m.state.Nodes["fe-paris-1"] = &Node{LastSeen: now, Report: NodeReport{ID: "fe-paris-1", Role: "frontend", Region: "eu", Addr: "192.0.2.10",
		Load: 0.42, RPS: 120, ClientLatencyMS: 18, Bundles: map[string]string{"shop.example": "sha256:abc"},
		Links: map[string]LinkQuality{"be1:4433": {RTTMS: 12.5, Loss: 0.001}},
		Rooms: map[string]RoomReport{"shop": {Capacity: 100, RatePerMinute: 600, Active: 10}}}}
	m.state.Nodes["fe-lyon-1"] = &Node{LastSeen: now, Report: NodeReport{ID: "fe-lyon-1", Role: "frontend", Region: "eu", Addr: "192.0.2.11",
		Rooms: map[string]RoomReport{"shop": {Capacity: 100, RatePerMinute: 600, Active: 20, Waiting: 9}}}}
	m.state.Nodes["be-origin-1"] = &Node{LastSeen: now.Add(-time.Minute), Report: NodeReport{ID: "be-origin-1", Role: "backend", Region: "eu", Addr: "192.0.2.20", Upstream: "192.0.2.20:4433"}}
	m.state.Bundles["sha256:abc"] = &BundleInfo{Digest: "sha256:abc", Site: "shop.example", Version: "7"}
	m.state.Sites["shop.example"] = &Site{Name: "shop.example", Bundle: "sha256:abc", Demand: map[string]float64{"eu": 118.5},
		Assigned: map[string]*Assignment{"fe-paris-1": {Node: "fe-paris-1", Pinned: true, Reason: "operator"}},
		Backends: map[string]*Assignment{"be-origin-1": {Node: "be-origin-1", Reason: "no healthy back-end serves the site"}}}
	m.state.Decisions = []Decision{{Time: now, Site: "shop.example", Node: "fe-paris-1", Action: "assign", Reason: "estimated demand 150 req/s above the target", By: "placement"}}
	srv := httptest.NewServer(m)
	defer srv.Close()

	dom := string(chromium.Run(t, bin, "--virtual-time-budget=5000", "--dump-dom", srv.URL+"/status#key=tok"))
	for _, want := range []string{"fe-paris-1", "be-origin-1", "shop.example", "v7", "118.5", "12.5 ms", "estimated demand 150 req/s above the target", "0.42",
		// The back-end assignment, and each front-end's share of the room.
		"be-origin-1 192.0.2.20:4433", "waiting room shop", "16 places", "83 places", "2 front-ends"} {
		if !strings.Contains(dom, want) {
			t.Errorf("status page lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("DOM: %.2000s", dom)
	}
	// Without the key it says how to get in, and shows no state.
	dom = string(chromium.Run(t, bin, "--virtual-time-budget=3000", "--dump-dom", srv.URL+"/status"))
	if !strings.Contains(dom, "401") || strings.Contains(dom, "fe-paris-1") {
		t.Errorf("without a token: %.500s", dom)
	}
	shot := filepath.Join(t.TempDir(), "status.png")
	if dir := os.Getenv("CONDUCTOR_SCREENSHOTS"); dir != "" {
		shot = filepath.Join(dir, "status.png")
	}
	chromium.Run(t, bin, "--window-size=1280,800", "--virtual-time-budget=3000", "--screenshot="+shot, srv.URL+"/status#key=tok")
	b, err := os.ReadFile(shot)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil || chromium.DistinctColors(img) < 50 {
		t.Fatalf("status page screenshot: %v", err)
	}
}
