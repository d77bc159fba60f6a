package loadindex

import (
	"math"
	"sync"
	"time"

	"github.com/conductor-edge/conductor/internal/window"
	"github.com/conductor-edge/conductor/shifting"
)

// A load gate in fleet mode (`fleet`) paces its front-end to a share of
// the origin's published capacity, not all of it: the manager sizes each
// front-end's share from the paced demand every front-end reports, so the
// site's front-ends together stay under Threshold × capacity. The share
// lives on the origin's view (Observed), which outlives config reloads.

// fleetShare is a view's lease and demand.
type fleetShare struct {
	mu      sync.Mutex
	fleet   bool
	floor   int // divide by at least this without a lease
	share   float64
	until   time.Time
	lastN   int
	offered window.Second // requests offered to the pacer, for the demand
}

// setFleet turns fleet mode on for the view (a gate of the running config
// names it with `fleet`).
func (o *Observed) setFleet(floor int) {
	o.fleet.mu.Lock()
	o.fleet.fleet, o.fleet.floor = true, floor
	o.fleet.mu.Unlock()
}

// offer counts a request offered to the pacer.
func (o *Observed) offer(now time.Time) {
	o.fleet.mu.Lock()
	o.fleet.offered.Add(now, 1)
	o.fleet.mu.Unlock()
}

// Share is the fraction of the origin's capacity this front-end may pace
// to: 1 outside fleet mode; the lease's share while it holds; else 1/N,
// N being the front-ends of the last lease, at least the gate's floor.
func (o *Observed) Share(now time.Time) float64 {
	f := &o.fleet
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case !f.fleet:
		return 1
	case now.Before(f.until):
		return f.share
	}
	return 1 / float64(max(1, f.lastN, f.floor))
}

// FleetGates reports the fleet-mode gates' demand, by origin name.
func FleetGates(now time.Time) map[string]shifting.GateReport {
	out := map[string]shifting.GateReport{}
	observed.Range(func(key, value any) bool {
		name, _ := key.(string)
		o, ok := value.(*Observed)
		if !ok {
			return true
		}
		o.fleet.mu.Lock()
		if o.fleet.fleet {
			out[name] = shifting.GateReport{Demand: float64(o.fleet.offered.Sum(now))}
		}
		o.fleet.mu.Unlock()
		return true
	})
	return out
}

// ApplyGateLeases gives the views their shares, received now.
func ApplyGateLeases(leases map[string]shifting.GateLease, now time.Time) {
	observed.Range(func(key, value any) bool {
		name, _ := key.(string)
		o, ok := value.(*Observed)
		l, have := leases[name]
		if !ok || !have || math.IsNaN(l.Share) || l.Share <= 0 || l.Share > 1 {
			return true
		}
		o.fleet.mu.Lock()
		o.fleet.share, o.fleet.lastN = l.Share, l.Frontends
		o.fleet.until = now.Add(time.Duration(l.TTLMS) * time.Millisecond)
		o.fleet.mu.Unlock()
		return true
	})
}
