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
	"sync"
	"sync/atomic"
	"time"
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

var (
	observedMu sync.Mutex
	observed   = map[string]*Observed{}
)

// ObservedFor returns the shared view named name (created on first use;
// kept across config reloads, so a reload does not forget the load).
func ObservedFor(name string) *Observed {
	observedMu.Lock()
	defer observedMu.Unlock()
	o := observed[name]
	if o == nil {
		o = new(Observed)
		observed[name] = o
	}
	return o
}

// Overloaded reports whether the named view's index is above threshold.
// A reading older than maxAge does not count: without news, the front-end
// assumes the origin recovered.
func Overloaded(name string, threshold float64, maxAge time.Duration) bool {
	idx, age, ok := ObservedFor(name).Get()
	return ok && age <= maxAge && idx > threshold
}
