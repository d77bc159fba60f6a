package shifting

import (
	"testing"
	"time"
)

func report(id, region string, load float64, siteRPS float64) *Node {
	return &Node{Report: NodeReport{ID: id, Role: "frontend", Region: region, Addr: id, Load: load, RPS: siteRPS,
		SiteRPS: map[string]float64{"shop": siteRPS}}}
}

func TestPlacementAddsAFrontEndForAHotSiteAndReleasesItAfterHysteresis(t *testing.T) {
	p := Policy{TargetRPS: 50, Hysteresis: 10 * time.Second, Settle: 2 * time.Second, Interval: time.Second}
	p.defaults()
	st := newSnapshot()
	st.Sites["shop"] = &Site{Name: "shop", Bundle: "sha256:x", Demand: map[string]float64{},
		Assigned: map[string]*Assignment{"fe-eu-1": {Node: "fe-eu-1", Pinned: true}}}
	now := time.Unix(1e9, 0)
	st.Nodes["fe-eu-1"] = report("fe-eu-1", "eu", 0.3, 200) // hot
	st.Nodes["fe-eu-2"] = report("fe-eu-2", "eu", 0.1, 0)
	st.Nodes["fe-us-1"] = report("fe-us-1", "us", 0.0, 0)
	var added []Decision
	for i := 0; i < 30 && len(added) == 0; i++ {
		now = now.Add(time.Second)
		for _, n := range st.Nodes {
			n.LastSeen = now
		}
		added = p.place(st, now)
	}
	if len(added) != 1 || added[0].Action != "assign" || added[0].Node != "fe-eu-2" {
		t.Fatalf("decisions %+v; want fe-eu-2 (same region, idle) assigned", added)
	}
	t.Logf("assigned after the demand EWMA rose: %s", added[0].Reason)
	// Demand falls: nothing for the hysteresis period, then a release.
	st.Nodes["fe-eu-1"].Report.SiteRPS["shop"] = 5
	var released []Decision
	start := now
	for i := 0; i < 60 && len(released) == 0; i++ {
		now = now.Add(time.Second)
		for _, n := range st.Nodes {
			n.LastSeen = now
		}
		released = p.place(st, now)
	}
	if len(released) != 1 || released[0].Action != "release" || released[0].Node != "fe-eu-2" {
		t.Fatalf("decisions %+v; want fe-eu-2 released", released)
	}
	if waited := now.Sub(start); waited < p.Hysteresis {
		t.Fatalf("released after %v, before the hysteresis of %v", waited, p.Hysteresis)
	}
	if st.Sites["shop"].Assigned["fe-eu-1"] == nil {
		t.Fatal("the operator's (pinned) assignment was released")
	}
}

func TestPlacementDoesNotFlapAroundTheTarget(t *testing.T) {
	p := Policy{TargetRPS: 50, Hysteresis: 20 * time.Second, Settle: 5 * time.Second}
	p.defaults()
	st := newSnapshot()
	st.Sites["shop"] = &Site{Name: "shop", Bundle: "sha256:x", Demand: map[string]float64{},
		Assigned: map[string]*Assignment{"a": {Node: "a", Pinned: true}}}
	st.Nodes["a"] = report("a", "eu", 0.1, 0)
	st.Nodes["b"] = report("b", "eu", 0.1, 0)
	now := time.Unix(1e9, 0)
	changes := 0
	for i := 0; i < 120; i++ { // demand oscillates around the target
		now = now.Add(time.Second)
		rps := 45.0
		if i%4 < 2 {
			rps = 60
		}
		st.Nodes["a"].Report.SiteRPS["shop"] = rps
		for _, n := range st.Nodes {
			n.LastSeen = now
		}
		changes += len(p.place(st, now))
	}
	if changes > 1 {
		t.Fatalf("%d placement changes in 2 minutes of demand around the target", changes)
	}
}

func TestPlacementSkipsUnhealthyAndOverloadedFrontEnds(t *testing.T) {
	p := Policy{TargetRPS: 10}
	p.defaults()
	st := newSnapshot()
	st.Sites["shop"] = &Site{Name: "shop", Bundle: "sha256:x", Demand: map[string]float64{"eu": 100}, Assigned: map[string]*Assignment{}}
	now := time.Unix(1e9, 0)
	st.Nodes["dead"] = report("dead", "eu", 0, 0)
	st.Nodes["dead"].LastSeen = now.Add(-time.Minute)
	st.Nodes["busy"] = report("busy", "eu", 0.95, 0)
	st.Nodes["busy"].LastSeen = now
	st.Nodes["far"] = report("far", "us", 0.1, 0)
	st.Nodes["far"].LastSeen = now
	ds := p.place(st, now)
	if len(ds) != 1 || ds[0].Node != "far" {
		t.Fatalf("%+v: want the only healthy, unloaded front-end", ds)
	}
}

// A site whose first bundle was just uploaded waits Settle before
// placement assigns it on its own: the operator's assignment, which
// usually follows the upload at once, is not raced (TestBundleShiftedToAFrontEnd
// saw placement take the site first, now and then, when the new site's
// settle clock was zero).
func TestNewSiteSettlesBeforePlacement(t *testing.T) {
	m, err := New(Config{Store: FileStore{Dir: t.TempDir()}, Policy: Policy{TargetRPS: 10, Settle: time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	m.state.Nodes["fe1"] = report("fe1", "eu", 0.1, 0)
	m.state.Nodes["fe1"].LastSeen = now
	s := m.siteLocked("shop")
	s.Bundle = "sha256:x"
	if ds := m.cfg.Policy.place(m.state, now.Add(time.Second)); len(ds) != 0 {
		t.Fatalf("placement acted on a site a second old: %+v", ds)
	}
	later := now.Add(2 * time.Minute)
	m.state.Nodes["fe1"].LastSeen = later
	if ds := m.cfg.Policy.place(m.state, later); len(ds) != 1 {
		t.Fatalf("placement did not act once the site settled: %+v", ds)
	}
}
