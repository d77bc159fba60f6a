package shop

import (
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/conductor-edge/conductor/internal/window"
)

// Limited caps an origin at rps requests per second, as a real origin
// that falls over would: beyond the cap it answers 503. It measures the
// requests that reach it over a sliding second (ten 100 ms buckets) and
// reports, at /__origin/stats, the highest such rate seen, so a test can
// check that the front-ends kept the origin within its capacity.
type Limited struct {
	next http.Handler
	rps  int

	mu       sync.Mutex
	arrivals window.Second
	maxRate  int
	served   int64
	rejected int64
}

// Limit wraps h.
func Limit(h http.Handler, rps int) *Limited { return &Limited{next: h, rps: rps} }

// Stats is what /__origin/stats reports.
type Stats struct {
	CapRPS     int   `json:"cap_rps"`
	MaxRPS     int   `json:"max_rps"` // most requests that reached the origin in any sliding second
	Served     int64 `json:"served"`
	Rejected   int64 `json:"rejected"`
	CurrentRPS int   `json:"current_rps"`
}

func (l *Limited) arrive(now time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.arrivals.Add(now, 1)
	rate := int(l.arrivals.Sum(now))
	l.maxRate = max(l.maxRate, rate)
	return rate
}

func (l *Limited) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/__origin/stats" {
		l.mu.Lock()
		st := Stats{CapRPS: l.rps, MaxRPS: l.maxRate, Served: l.served, Rejected: l.rejected, CurrentRPS: int(l.arrivals.Sum(time.Now()))}
		l.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(st)
		return
	}
	if l.arrive(time.Now()) > l.rps {
		l.mu.Lock()
		l.rejected++
		l.mu.Unlock()
		http.Error(w, "origin over capacity", http.StatusServiceUnavailable)
		return
	}
	l.mu.Lock()
	l.served++
	l.mu.Unlock()
	l.next.ServeHTTP(w, r)
}
