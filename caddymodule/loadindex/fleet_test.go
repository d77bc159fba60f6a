package loadindex

import (
	"testing"
	"time"

	"github.com/conductor-edge/conductor/shifting"
)

// A fleet gate paces to its lease's share of the origin's capacity; with
// no lease, to 1/N; it reports the demand offered to it.
func TestGateFleetShare(t *testing.T) {
	now := time.Now()
	plain := Observe("gate-plain")
	defer Release("gate-plain")
	if plain.Share(now) != 1 {
		t.Fatalf("a gate outside fleet mode: share %v", plain.Share(now))
	}
	o := Observe("gate-fleet")
	defer Release("gate-fleet")
	o.setFleet(2)
	if got := o.Share(now); got != 0.5 {
		t.Fatalf("before a lease: share %v, want 1/2", got)
	}
	for range 30 {
		o.offer(now)
	}
	if d := FleetGates(now)["gate-fleet"].Demand; d != 30 {
		t.Fatalf("reported demand %v, want 30", d)
	}
	if _, ok := FleetGates(now)["gate-plain"]; ok {
		t.Fatal("a gate outside fleet mode was reported")
	}
	ApplyGateLeases(map[string]shifting.GateLease{"gate-fleet": {Share: 0.2, Frontends: 4, TTLMS: 1000}}, now)
	if got := o.Share(now); got != 0.2 {
		t.Fatalf("under a lease: share %v", got)
	}
	if got := o.Share(now.Add(2 * time.Second)); got != 0.25 {
		t.Fatalf("after the lease: share %v, want 1/4 (the last lease's front-ends)", got)
	}
	// A lease out of range is ignored.
	ApplyGateLeases(map[string]shifting.GateLease{"gate-fleet": {Share: 7, Frontends: 1, TTLMS: 1000}}, now.Add(3*time.Second))
	if got := o.Share(now.Add(3 * time.Second)); got != 0.25 {
		t.Fatalf("after a bad lease: share %v", got)
	}
}
