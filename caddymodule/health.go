package caddymodule

import (
	"fmt"
	"net/http"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	caddy.RegisterModule(HealthAPI{})
	caddy.RegisterModule(Health{})
	httpcaddyfile.RegisterHandlerDirective("conductor_health", func(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
		hh := new(Health)
		return hh, hh.UnmarshalCaddyfile(h.Dispenser)
	})
	httpcaddyfile.RegisterDirectiveOrder("conductor_health", httpcaddyfile.Before, "respond")
}

// LoadHeader carries a node's load on its health answers (0 idle, 1 every
// core busy): the DNS plugin reads it in static mode (corednsplugin's
// health checks), as it reads the manager's view in managed mode.
const LoadHeader = "Conductor-Load"

// loadSampler measures this process's CPU share: the CPU seconds it used
// since the previous sample over the wall time, per core. A front-end's
// load is its own process's, not the machine's load average, so that two
// nodes on one machine (the demo, the tests) are told apart, and a
// sample reacts within a health-check interval rather than a minute.
type loadSampler struct {
	mu        sync.Mutex
	at        time.Time
	cpu       time.Duration
	load      float64
	minWindow time.Duration
}

func newLoadSampler() *loadSampler {
	s := &loadSampler{minWindow: 500 * time.Millisecond}
	s.at, s.cpu = time.Now(), processCPU()
	return s
}

// Load is the latest figure; a call at least minWindow after the last
// sample takes a new one (several checkers polling at once do not shrink
// the window to nothing).
func (s *loadSampler) Load() float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	if wall := now.Sub(s.at); wall >= s.minWindow {
		cpu := processCPU()
		s.load = min(1, float64(cpu-s.cpu)/float64(wall)/float64(runtime.NumCPU()))
		s.at, s.cpu = now, cpu
	}
	return s.load
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func writeHealth(w http.ResponseWriter, s *loadSampler) {
	w.Header().Set(LoadHeader, strconv.FormatFloat(s.Load(), 'f', 3, 64))
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintln(w, "ok")
}

// HealthAPI is `admin.api.conductor_health`: GET /conductor/health on the
// admin endpoint answers 200 with the node's load in Conductor-Load.
type HealthAPI struct{ s *loadSampler }

// CaddyModule returns the Caddy module information.
func (HealthAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "admin.api.conductor_health", New: func() caddy.Module { return HealthAPI{s: newLoadSampler()} }}
}

// Routes returns the admin route.
func (a HealthAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{{Pattern: "/conductor/health", Handler: caddy.AdminHandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: fmt.Errorf("GET only")}
		}
		writeHealth(w, a.s)
		return nil
	})}}
}

// Health is `http.handlers.conductor_health`, the same answer on a site,
// for DNS servers that cannot reach the admin endpoint:
//
//	handle /.well-known/conductor-health {
//		conductor_health
//	}
type Health struct{ s *loadSampler }

// CaddyModule returns the Caddy module information.
func (Health) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.conductor_health", New: func() caddy.Module { return new(Health) }}
}

// Provision starts the sampler.
func (h *Health) Provision(caddy.Context) error {
	h.s = newLoadSampler()
	return nil
}

// ServeHTTP answers with the load.
func (h *Health) ServeHTTP(w http.ResponseWriter, _ *http.Request, _ caddyhttp.Handler) error {
	writeHealth(w, h.s)
	return nil
}

// UnmarshalCaddyfile takes no arguments.
func (h *Health) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if d.NextArg() {
		return d.ArgErr()
	}
	return nil
}

var (
	_ caddy.AdminRouter           = HealthAPI{}
	_ caddyhttp.MiddlewareHandler = (*Health)(nil)
	_ caddy.Provisioner           = (*Health)(nil)
)
