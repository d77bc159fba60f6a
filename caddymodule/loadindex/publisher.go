package loadindex

import (
	"encoding/json"
	"io"
	"math"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/conductor-edge/conductor/internal/window"
)

func init() {
	caddy.RegisterModule(Publisher{})
}

// Publisher is `http.handlers.load_index`, on the back-end in front of the
// origin. The index is the largest of:
//
//	requests/s over the last second ÷ capacity
//	requests in flight ÷ max_in_flight
//	latency (EWMA) ÷ target_latency
//	the origin's own Conductor-Load-Index (for 5 s after it said so)
//	the operator's, set through the admin API (until it expires)
//
// each part only when configured.
type Publisher struct {
	// Capacity is the origin's capacity in requests/s.
	Capacity float64 `json:"capacity,omitempty"`
	// MaxInFlight is the number of concurrent requests the origin takes.
	MaxInFlight int64 `json:"max_in_flight,omitempty"`
	// TargetLatency is the latency at which the origin counts as full.
	TargetLatency caddy.Duration `json:"target_latency,omitempty"`

	m *meter
}

// CaddyModule returns the Caddy module information.
func (Publisher) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.load_index",
		New: func() caddy.Module { return new(Publisher) },
	}
}

// meter is the measurement, shared by publishers across reloads so the
// index does not reset when the config changes.
type meter struct {
	mu       sync.Mutex
	requests window.Second
	inflight atomic.Int64
	latBits  atomic.Uint64 // EWMA latency, seconds
	origin   atomic.Uint64 // origin's index
	originAt atomic.Int64
	manual   atomic.Uint64 // operator's index
	manualTo atomic.Int64  // operator's index expiry, unix nanos
}

// meters holds the meter while some config's load_index uses it: one per
// process, since a back-end fronts one origin. A reload provisions the new
// config before it cleans up the old, so the meter carries over; it goes
// when the last load_index does.
var meters = caddy.NewUsagePool()

const meterKey = "origin"

// Destruct implements caddy.Destructor; a meter holds no resources.
func (*meter) Destruct() error { return nil }

// Provision joins the shared meter.
func (p *Publisher) Provision(caddy.Context) error {
	m, _, err := meters.LoadOrNew(meterKey, func() (caddy.Destructor, error) { return new(meter), nil })
	if err != nil {
		return err
	}
	p.m = m.(*meter)
	return nil
}

// liveMeter is the meter the running config's load_index handlers share,
// or nil if there are none.
func liveMeter() *meter {
	var m *meter
	meters.Range(func(_, v any) bool {
		m, _ = v.(*meter)
		return false
	})
	return m
}

// Cleanup gives the shared meter back.
func (p *Publisher) Cleanup() error {
	if p.m != nil {
		p.m = nil
		_, err := meters.Delete(meterKey)
		return err
	}
	return nil
}

func (m *meter) count(now time.Time) {
	m.mu.Lock()
	m.requests.Add(now, 1)
	m.mu.Unlock()
}

func (m *meter) rps(now time.Time) float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return float64(m.requests.Sum(now))
}

// Snapshot is the published state.
type Snapshot struct {
	Index       float64 `json:"index"`
	RPS         float64 `json:"rps"`
	InFlight    int64   `json:"in_flight"`
	LatencyMS   float64 `json:"latency_ms"`
	CapacityRPS float64 `json:"capacity_rps,omitempty"`
	Origin      float64 `json:"origin_index,omitempty"`
	Operator    float64 `json:"operator_index,omitempty"`
}

func (p *Publisher) snapshot(now time.Time) Snapshot {
	s := Snapshot{RPS: p.m.rps(now), InFlight: p.m.inflight.Load(), CapacityRPS: p.Capacity,
		LatencyMS: math.Float64frombits(p.m.latBits.Load()) * 1000}
	if p.Capacity > 0 {
		s.Index = max(s.Index, s.RPS/p.Capacity)
	}
	if p.MaxInFlight > 0 {
		s.Index = max(s.Index, float64(s.InFlight)/float64(p.MaxInFlight))
	}
	if p.TargetLatency > 0 {
		s.Index = max(s.Index, s.LatencyMS/float64(time.Duration(p.TargetLatency).Milliseconds()))
	}
	if at := p.m.originAt.Load(); at != 0 && now.Sub(time.Unix(0, at)) < 5*time.Second {
		s.Origin = math.Float64frombits(p.m.origin.Load())
		s.Index = max(s.Index, s.Origin)
	}
	if to := p.m.manualTo.Load(); to != 0 && now.UnixNano() < to {
		s.Operator = math.Float64frombits(p.m.manual.Load())
		s.Index = max(s.Index, s.Operator)
	}
	s.Index = math.Round(s.Index*1000) / 1000
	return s
}

// ServeHTTP measures the request, passes it to the origin, and publishes
// the index on the response.
func (p *Publisher) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if r.URL.Path == WellKnownPath {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		s := p.snapshot(time.Now())
		w.Header().Set(Header, formatIndex(s.Index, s.CapacityRPS))
		return json.NewEncoder(w).Encode(s)
	}
	start := time.Now()
	p.m.count(start)
	p.m.inflight.Add(1)
	pw := &publishWriter{ResponseWriterWrapper: &caddyhttp.ResponseWriterWrapper{ResponseWriter: w}, p: p, start: start}
	err := next.ServeHTTP(pw, r)
	p.m.inflight.Add(-1)
	lat := time.Since(start).Seconds()
	for {
		old := p.m.latBits.Load()
		v := math.Float64frombits(old)
		nv := lat
		if v != 0 {
			nv = 0.8*v + 0.2*lat
		}
		if p.m.latBits.CompareAndSwap(old, math.Float64bits(nv)) {
			break
		}
	}
	return err
}

// publishWriter sets the index header as the response starts, after
// reading the origin's own figure from it.
type publishWriter struct {
	*caddyhttp.ResponseWriterWrapper
	p     *Publisher
	start time.Time
	wrote bool
}

func (pw *publishWriter) WriteHeader(status int) {
	if !pw.wrote && status >= 200 {
		pw.wrote = true
		h := pw.Header()
		if v := h.Get(Header); v != "" {
			if f, err := strconv.ParseFloat(firstField(v), 64); err == nil && f >= 0 && !math.IsInf(f, 0) {
				pw.p.m.origin.Store(math.Float64bits(f))
				pw.p.m.originAt.Store(time.Now().UnixNano())
			}
		}
		s := pw.p.snapshot(time.Now())
		h.Set(Header, formatIndex(s.Index, s.CapacityRPS))
	}
	pw.ResponseWriterWrapper.WriteHeader(status)
}

func (pw *publishWriter) Write(b []byte) (int, error) {
	if !pw.wrote {
		pw.WriteHeader(http.StatusOK)
	}
	return pw.ResponseWriterWrapper.Write(b)
}

// ReadFrom keeps io.Copy going through Write: the embedded wrapper's
// ReadFrom would hand the body to the client's writer directly, past
// this one.
func (pw *publishWriter) ReadFrom(r io.Reader) (int64, error) {
	return io.Copy(struct{ io.Writer }{pw}, r)
}

// formatIndex renders the header: "0.734; capacity=50".
func formatIndex(idx, capacity float64) string {
	v := strconv.FormatFloat(idx, 'f', 3, 64)
	if capacity > 0 {
		v += "; capacity=" + strconv.FormatFloat(capacity, 'f', -1, 64)
	}
	return v
}

// ParseHeader reads a Conductor-Load-Index value.
func ParseHeader(v string) (idx, capacity float64, ok bool) {
	idx, err := strconv.ParseFloat(firstField(v), 64)
	if err != nil || idx < 0 || math.IsNaN(idx) || math.IsInf(idx, 0) {
		return 0, 0, false
	}
	for _, part := range splitParams(v) {
		if k, val, found := cut(part, '='); found && k == "capacity" {
			if c, err := strconv.ParseFloat(val, 64); err == nil && c > 0 && !math.IsInf(c, 0) {
				capacity = c
			}
		}
	}
	return idx, capacity, true
}

var (
	_ caddy.Provisioner           = (*Publisher)(nil)
	_ caddy.CleanerUpper          = (*Publisher)(nil)
	_ caddyhttp.MiddlewareHandler = (*Publisher)(nil)
)
