// Package loadindex publishes the origin's load index from the back-end
// and acts on it at the front-end. The seed's front-end "may display a
// wait page driven by a load index the originating server publishes";
// here the index is a number where 1.0 means "at capacity".
//
//   - `load_index` (back-end) measures what reaches the origin — requests
//     per second against a capacity, requests in flight, latency against a
//     target — takes the origin's own figure (a `Conductor-Load-Index`
//     response header) and an operator's (the admin API) into account, and
//     publishes the result on every response and at
//     /.well-known/conductor-load.
//   - `load_gate` (front-end) learns the index in-band from those response
//     headers and by polling, paces the requests it lets through so the
//     index stays under a threshold, and answers the rest with the wait
//     page. Priorities 0–1 always go through.
package loadindex

import (
	"math"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// Header carries the index on responses, from the origin (optional) and
// from the back-end (always).
const Header = "Conductor-Load-Index"

// WellKnownPath answers the index as JSON at the back-end.
const WellKnownPath = "/.well-known/conductor-load"

// Observed is a front-end's view of an origin's load index, shared by the
// handlers that act on it (load_gate, waiting_room) under one name.
type Observed struct {
	bits    atomic.Uint64 // float64 index
	at      atomic.Int64  // unix nanos of the last update
	capBits atomic.Uint64 // published capacity, requests/s (0: unknown)
	fleet   fleetShare    // fleet mode: this front-end's share (fleet.go)
}

// Set records a new reading.
func (o *Observed) Set(index, capacity float64) {
	if math.IsNaN(index) || index < 0 {
		return
	}
	o.bits.Store(math.Float64bits(index))
	if capacity > 0 {
		o.capBits.Store(math.Float64bits(capacity))
	}
	o.at.Store(time.Now().UnixNano())
}

// Get returns the index and its age; ok is false before the first reading.
func (o *Observed) Get() (index float64, age time.Duration, ok bool) {
	at := o.at.Load()
	if at == 0 {
		return 0, 0, false
	}
	return math.Float64frombits(o.bits.Load()), time.Since(time.Unix(0, at)), true
}

// Capacity is the origin's published capacity in requests/s, 0 if unknown.
func (o *Observed) Capacity() float64 { return math.Float64frombits(o.capBits.Load()) }

// The views outlive config reloads (a reload must not forget the load),
// in a UsagePool as Caddy keeps its listeners: each config's handlers hold
// a reference, and a view goes when the last config naming it is cleaned
// up. So the table is bounded by the names in the running configs.
var observed = caddy.NewUsagePool()

// Destruct implements caddy.Destructor.
func (o *Observed) Destruct() error { return nil }

// Observe takes a reference to the view named name, created on first use.
// Every Observe is paired with a Release, at the holder's Cleanup.
func Observe(name string) *Observed {
	v, _, _ := observed.LoadOrNew(name, func() (caddy.Destructor, error) { return new(Observed), nil })
	return v.(*Observed)
}

// Release gives back a reference Observe took.
func Release(name string) { observed.Delete(name) }

// OverloadedView reports whether the view's index is above threshold. A
// reading older than maxAge does not count: without news, the front-end
// assumes the origin recovered.
func OverloadedView(o *Observed, threshold float64, maxAge time.Duration) bool {
	idx, age, ok := o.Get()
	return ok && age <= maxAge && idx > threshold
}
