package loadindex

import (
	"context"
	"fmt"
	"html/template"
	"io"
	"math"
	"net/http"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/conductor-edge/conductor/caddymodule/internal/promreg"
	"github.com/conductor-edge/conductor/caddymodule/pages"
	"github.com/conductor-edge/conductor/caddymodule/priority"
	"github.com/conductor-edge/conductor/caddymodule/selfrequest"
	"github.com/conductor-edge/conductor/internal/window"
)

func init() {
	caddy.RegisterModule(Gate{})
}

// Gate is `http.handlers.load_gate`, on the front-end. Requests at
// priority AdmitPriority or more urgent always pass. The others are paced
// by a token bucket whose rate follows the origin's load index: while the
// index is above Threshold the rate drops to 80 % of what was admitted in
// the last second; below 95 % of it, the rate grows by 2 % of capacity
// each 100 ms; and it never exceeds Threshold × the published capacity,
// less the urgent requests passing now.
// A request the bucket has no token for gets the wait page (503 with
// Retry-After and an auto-refresh), never the origin's error.
type Gate struct {
	// Name of the origin whose index this gate follows (shared with
	// waiting_room). Default "default".
	Name string `json:"name,omitempty"`
	// Threshold above which low-priority requests are paced down. Default 0.9.
	Threshold float64 `json:"threshold,omitempty"`
	// AdmitPriority and more urgent priorities always pass. Default 1.
	AdmitPriority *int `json:"admit_priority,omitempty"`
	// Poll is a URL (its host selects the site) polled through this
	// server, so the index is known even when no low-priority traffic
	// flows; PollInterval defaults to 1s.
	Poll         string         `json:"poll,omitempty"`
	PollInterval caddy.Duration `json:"poll_interval,omitempty"`
	// Retry is the wait page's Retry-After and refresh. Default 5s.
	Retry caddy.Duration `json:"retry,omitempty"`
	// Fleet paces this front-end to its share of the origin's capacity,
	// which the manager sizes from every front-end's paced demand (the
	// node needs conductor_agent). FleetFrontends divides the capacity
	// when no lease holds: at least 2, and at least the front-ends of
	// the last lease.
	Fleet          bool `json:"fleet,omitempty"`
	FleetFrontends int  `json:"fleet_frontends,omitempty"`
	// SiteName brands the wait page; WaitPage replaces it (html/template).
	SiteName string `json:"site_name,omitempty"`
	WaitPage string `json:"wait_page,omitempty"`

	obs      *Observed
	tmpl     *template.Template
	bucket   *pacer
	cancel   context.CancelFunc
	wg       *sync.WaitGroup
	logger   *zap.Logger
	srv      *caddyhttp.Server
	pollHost string
	pollURI  string
}

// CaddyModule returns the Caddy module information.
func (Gate) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.load_gate",
		New: func() caddy.Module { return new(Gate) },
	}
}

// Provision sets defaults, loads the page and starts the controller.
func (g *Gate) Provision(ctx caddy.Context) error {
	g.logger = ctx.Logger()
	if g.Name == "" {
		g.Name = "default"
	}
	if g.Threshold == 0 {
		g.Threshold = 0.9
	}
	if g.AdmitPriority == nil {
		one := 1
		g.AdmitPriority = &one
	}
	if g.Retry == 0 {
		g.Retry = caddy.Duration(5 * time.Second)
	}
	if g.PollInterval == 0 {
		g.PollInterval = caddy.Duration(time.Second)
	}
	if g.SiteName == "" {
		g.SiteName = "This site"
	}
	if g.WaitPage != "" {
		t, err := pages.Load(g.WaitPage)
		if err != nil {
			return err
		}
		g.tmpl = t
	}
	if g.Poll != "" {
		host, uri, err := selfrequest.SplitURL(g.Poll)
		if err != nil {
			return fmt.Errorf("load_gate poll: %v", err)
		}
		g.pollHost, g.pollURI = host, uri
	}
	if err := promreg.Register(ctx, gateShed); err != nil {
		return err
	}
	g.obs = Observe(g.Name)
	if g.Fleet {
		g.obs.setFleet(max(2, g.FleetFrontends))
	}
	g.bucket = newPacer()
	g.srv = selfrequest.Server(ctx)
	var c context.Context
	c, g.cancel = context.WithCancel(context.Background())
	g.wg = new(sync.WaitGroup)
	g.wg.Add(1)
	go g.control(c)
	return nil
}

// Validate checks ranges.
func (g *Gate) Validate() error {
	if g.Threshold <= 0 || g.Threshold > 10 {
		return fmt.Errorf("load_gate: threshold %v out of range (0, 10]", g.Threshold)
	}
	if p := *g.AdmitPriority; p < -1 || p >= priority.Levels {
		return fmt.Errorf("load_gate: admit_priority %d out of range -1..%d", p, priority.Levels-1)
	}
	return nil
}

// Cleanup stops the controller.
func (g *Gate) Cleanup() error {
	if g.cancel != nil {
		g.cancel()
		g.wg.Wait()
	}
	if g.obs != nil {
		Release(g.Name)
		g.obs = nil
	}
	return nil
}

// control adjusts the pacing rate every 100 ms and polls the index.
func (g *Gate) control(ctx context.Context) {
	defer g.wg.Done()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var lastPoll time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			idx, age, ok := g.obs.Get()
			fresh := ok && age < 5*time.Second
			g.bucket.adjust(now, fresh, idx, g.Threshold, g.obs.Capacity()*g.obs.Share(now))
			if g.pollHost != "" && now.Sub(lastPoll) >= time.Duration(g.PollInterval) {
				lastPoll = now
				g.poll(ctx)
			}
		}
	}
}

func (g *Gate) poll(ctx context.Context) {
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var d selfrequest.Discard
	if err := selfrequest.Do(pctx, g.srv, g.pollHost, g.pollURI, http.Header{"Accept": {"application/json"}}, &d); err != nil {
		g.logger.Debug("load index poll", zap.Error(err))
	}
}

// ServeHTTP lets urgent requests through, paces the others, and learns
// the index from every response.
func (g *Gate) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	prio, _ := priority.Of(r.Context(), priority.Default)
	urgent := prio <= *g.AdmitPriority
	if urgent {
		g.bucket.urgentPassed(time.Now())
	}
	// The front-end's own requests (polls, cache refreshes and warms, one
	// per URL at a time) take no visitor's share of the budget.
	paced := !selfrequest.Is(r) && !urgent
	now := time.Now()
	if paced && g.Fleet {
		g.obs.offer(now) // the demand the manager sizes this gate's share by
	}
	if paced && !g.bucket.take(now) {
		idx, _, _ := g.obs.Get()
		gateShed.WithLabelValues(g.Name).Inc()
		return pages.Write(w, r, pages.Wait, g.tmpl, http.StatusServiceUnavailable, pages.Data{
			Site: g.SiteName, RefreshSeconds: int(time.Duration(g.Retry).Seconds()), LoadPercent: idx * 100,
		})
	}
	ow := &observeWriter{ResponseWriterWrapper: &caddyhttp.ResponseWriterWrapper{ResponseWriter: w}, obs: g.obs}
	return next.ServeHTTP(ow, r)
}

// observeWriter reads the index from the response and keeps it from the
// client: it is the link's business, not the visitor's.
type observeWriter struct {
	*caddyhttp.ResponseWriterWrapper
	obs   *Observed
	wrote bool
}

func (o *observeWriter) WriteHeader(status int) {
	if !o.wrote && status >= 200 {
		o.wrote = true
		if v := o.Header().Get(Header); v != "" {
			if idx, capacity, ok := ParseHeader(v); ok {
				o.obs.Set(idx, capacity)
			}
			o.Header().Del(Header)
		}
	}
	o.ResponseWriterWrapper.WriteHeader(status)
}

func (o *observeWriter) Write(b []byte) (int, error) {
	if !o.wrote {
		o.WriteHeader(http.StatusOK)
	}
	return o.ResponseWriterWrapper.Write(b)
}

// ReadFrom keeps io.Copy going through Write: the embedded wrapper's
// ReadFrom would hand the body to the client's writer directly, past
// this one.
func (o *observeWriter) ReadFrom(r io.Reader) (int64, error) {
	return io.Copy(struct{ io.Writer }{o}, r)
}

// pacer is a token bucket (x/time/rate) whose rate the controller sets.
// Its burst is a tenth of a second of the rate, so what it admits is
// smooth at the origin's one-second scale.
type pacer struct {
	mu       sync.Mutex
	rate     float64 // requests per second; +Inf: no limit
	bucket   *rate.Limiter
	admitted window.Second // paced requests let through
	urgent   window.Second // urgent requests passed
}

// urgentPassed counts an urgent request: the capacity it takes is not
// there for the paced ones.
func (p *pacer) urgentPassed(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.urgent.Add(now, 1)
}

func newPacer() *pacer { return &pacer{rate: math.Inf(1), bucket: rate.NewLimiter(rate.Inf, 1)} }

func (p *pacer) take(now time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.bucket.AllowN(now, 1) {
		return false
	}
	p.admitted.Add(now, 1)
	return true
}

func (p *pacer) adjust(now time.Time, fresh bool, idx, threshold, capacity float64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	admitted, urgent := float64(p.admitted.Sum(now)), float64(p.urgent.Sum(now))
	switch {
	case !fresh:
		// No news: keep the rate, so a silent origin is not flooded.
	case idx > threshold:
		if math.IsInf(p.rate, 1) {
			p.rate = admitted
		}
		p.rate = max(1, min(p.rate, admitted)*0.8)
	case idx < threshold*0.95 && !math.IsInf(p.rate, 1):
		step := 1.0
		if capacity > 0 {
			step = max(step, capacity*0.02)
		}
		p.rate += step
	}
	if capacity > 0 {
		// What the origin can take below the threshold, less what urgent
		// requests (which are never paced) are taking now.
		p.rate = min(p.rate, max(1, capacity*threshold-urgent))
	}
	if math.IsInf(p.rate, 1) {
		p.bucket.SetLimitAt(now, rate.Inf)
		return
	}
	if p.bucket.Limit() == rate.Inf {
		// Pacing starts: the bucket starts full.
		p.bucket = rate.NewLimiter(rate.Limit(p.rate), max(1, int(p.rate/10)))
		return
	}
	p.bucket.SetLimitAt(now, rate.Limit(p.rate))
	p.bucket.SetBurstAt(now, max(1, int(p.rate/10)))
}

var (
	_ caddy.Provisioner           = (*Gate)(nil)
	_ caddy.Validator             = (*Gate)(nil)
	_ caddy.CleanerUpper          = (*Gate)(nil)
	_ caddyhttp.MiddlewareHandler = (*Gate)(nil)
)
