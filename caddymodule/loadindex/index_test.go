package loadindex

import (
	"testing"

	"github.com/caddyserver/caddy/v2"
)

// A load view lives while a config names it: a reload (the new config's
// handlers take their reference before the old ones give theirs back)
// keeps the reading; when the last holder goes, so does the view. Before,
// every name ever used stayed in a map for the life of the process.
func TestLoadViewsShrinkWhenConfigsGo(t *testing.T) {
	old := Observe("shop")
	old.Set(1.5, 100)
	cur := Observe("shop") // the next config
	Release("shop")        // the old config is cleaned up
	if cur != old {
		t.Fatal("a reload made a new view: the reading was lost")
	}
	if idx, _, ok := cur.Get(); !ok || idx != 1.5 {
		t.Fatalf("reading after the reload: %v %v", idx, ok)
	}
	Release("shop")
	if n, ok := observed.References("shop"); ok || n != 0 {
		t.Fatalf("the view outlived every config that named it: %d references", n)
	}
	if again := Observe("shop"); again == old {
		t.Fatal("a view named again after it went is the old one")
	}
	Release("shop")
}

// The origin's meter carries over a reload (the new config's load_index
// joins it before the old one leaves) and goes with the last load_index;
// the admin API then finds none.
func TestMeterCarriesOverReloadsAndGoesWithTheLast(t *testing.T) {
	var old, cur Publisher
	if err := old.Provision(caddy.Context{}); err != nil {
		t.Fatal(err)
	}
	old.m.inflight.Store(7)
	if err := cur.Provision(caddy.Context{}); err != nil {
		t.Fatal(err)
	}
	old.Cleanup()
	if cur.m.inflight.Load() != 7 || liveMeter() != cur.m {
		t.Fatal("a reload lost the meter")
	}
	cur.Cleanup()
	if n, ok := meters.References(meterKey); ok || n != 0 || liveMeter() != nil {
		t.Fatalf("the meter outlived every load_index: %d references", n)
	}
	var again Publisher
	again.Provision(caddy.Context{})
	defer again.Cleanup()
	if again.m.inflight.Load() != 0 {
		t.Fatal("a load_index after the last one went got the old meter")
	}
}
