package agent

import (
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	caddy.RegisterModule(Meter{})
}

// Meter is `http.handlers.conductor_meter`: it counts requests per site
// (Host) and times them, for the node's reports to the manager — the
// demand placement works from. The counts are the agent's (conductor_agent,
// found through ctx.App); without an agent, nothing is counted.
type Meter struct {
	agent *App
}

// CaddyModule returns the Caddy module information.
func (Meter) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.conductor_meter", New: func() caddy.Module { return new(Meter) }}
}

// Provision finds the agent.
func (m *Meter) Provision(ctx caddy.Context) error {
	m.agent = agentOf(ctx)
	return nil
}

// agentOf is the config's conductor_agent, or nil.
func agentOf(ctx caddy.Context) *App {
	app, err := ctx.AppIfConfigured("conductor_agent")
	if err != nil {
		return nil
	}
	a, _ := app.(*App)
	return a
}

// ServeHTTP counts the request under its site.
func (m *Meter) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	start := time.Now()
	err := next.ServeHTTP(w, r)
	if wk := m.agent.worker(); wk != nil {
		wk.meter.observe(siteOf(r.Host), time.Since(start))
	}
	return err
}

func siteOf(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return strings.ToLower(host)
}

// counts is the node's meter: a window of requests per site, swapped at
// each report.
type counts struct {
	mu      sync.Mutex
	since   time.Time
	sites   map[string]int
	samples []time.Duration
}

func newCounts() *counts { return &counts{since: time.Now(), sites: map[string]int{}} }

const maxSites = 1000 // a hostile Host header cannot grow the report without bound

func (c *counts) observe(site string, d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.sites[site]; ok || len(c.sites) < maxSites {
		c.sites[site]++
	}
	if len(c.samples) < 4096 {
		c.samples = append(c.samples, d)
	}
}

// take returns requests/s per site and the median latency since the last
// call, and starts a new window.
func (c *counts) take(now time.Time) (total float64, perSite map[string]float64, medianMS float64) {
	c.mu.Lock()
	sites, samples, since := c.sites, c.samples, c.since
	c.sites, c.samples, c.since = map[string]int{}, nil, now
	c.mu.Unlock()
	secs := max(now.Sub(since).Seconds(), 0.001)
	perSite = map[string]float64{}
	for s, n := range sites {
		perSite[s] = float64(n) / secs
		total += float64(n) / secs
	}
	if len(samples) > 0 {
		slices.Sort(samples)
		medianMS = float64(samples[len(samples)/2].Microseconds()) / 1000
	}
	return total, perSite, medianMS
}

var (
	_ caddyhttp.MiddlewareHandler = (*Meter)(nil)
	_ caddy.Provisioner           = (*Meter)(nil)
)
