// Package edgefn is the `edge_function` handler: WebAssembly program
// components that answer requests at the front-end (the seed: shifting
// "data and program components … so as to configure a selected resource
// to implement a specified set of functionality"; a front-end "may obtain
// program code … and then independently respond to client requests").
//
// A function is a WASI preview 1 reactor module run by wazero, with the
// compiler and a file compilation cache under Caddy's data directory. The
// request/response convention is in edgefn/sdk's doc: one exported
// `conductor_handle` per request, the request as HTTP/1.1 on stdin, the
// response CGI-style on stdout. A command module (`_start`, what a plain
// `go build` makes) works too, one fresh instance per request: slower (a
// Go module's runtime starts each time, 6–14 ms here, against 50–60 µs for
// a call into a live reactor instance).
//
// A function gets nothing ambient: no files, no sockets, no environment
// beyond what the config gives. It can fetch through the front-end's own
// routes, read its bundle's data files and log, through the `conductor`
// host module.
package edgefn

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/conductor-edge/conductor/caddymodule/selfrequest"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Handler is `http.handlers.edge_function`.
type Handler struct {
	// Module is the .wasm file.
	Module string `json:"module"`
	// Data is the directory the function's read_data reads from (its
	// bundle's data files). Empty: none.
	Data string `json:"data,omitempty"`
	// Env is the function's environment; nothing else of the host's is.
	Env map[string]string `json:"env,omitempty"`
	// MaxMemory bounds each instance's linear memory, in bytes (rounded
	// down to 64 KiB pages). Default 128 MiB.
	MaxMemory int64 `json:"max_memory,omitempty"`
	// Timeout is each call's wall-clock deadline: past it the call is
	// stopped and the instance discarded. Default 2s.
	Timeout caddy.Duration `json:"timeout,omitempty"`
	// MaxRequestBody and MaxResponse bound what goes in and comes out.
	// Defaults 1 MiB and 8 MiB.
	MaxRequestBody int64 `json:"max_request_body,omitempty"`
	MaxResponse    int64 `json:"max_response,omitempty"`
	// Instances bounds the instances running at once; a request waits
	// (up to Timeout) for one. Default 8.
	Instances int `json:"instances,omitempty"`
	// Name labels the metrics. Default: the module's file name.
	Name string `json:"name,omitempty"`
	// FetchAllow lists hosts besides the request's own that fetch may
	// name ("*.example.com" for subdomains).
	FetchAllow selfrequest.AllowList `json:"fetch_allow,omitempty"`

	cur *atomic.Pointer[pool] // the pool calls go to; nil once closed
	wg  *sync.WaitGroup       // the compiler's build, when the interpreter serves first
	// interpreterAfter: how long Open waits for the compiler (tests
	// shorten it).
	interpreterAfter time.Duration
	logger           *zap.Logger
	logs             *rate.Sometimes
	m                *fnMetrics
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.edge_function",
		New: func() caddy.Module { return new(Handler) },
	}
}

const pageSize = 64 << 10

// Provision compiles the module (from the compilation cache when it has
// it) and warms one instance.
func (h *Handler) Provision(ctx caddy.Context) error {
	if h.Module == "" {
		return errors.New("edge_function: module is required (the .wasm file)")
	}
	if err := RegisterMetrics(ctx); err != nil {
		return err
	}
	return h.Open(ctx.Logger())
}

// Open compiles the module and warms its pool, outside Caddy's
// provisioning: the bundle handler opens the functions a bundle carries
// when the bundle is installed. The metrics must have been registered
// (RegisterMetrics) by the module that opens it.
func (h *Handler) Open(logger *zap.Logger) error {
	h.logger = logger
	h.logs = &rate.Sometimes{Interval: time.Second}
	if h.MaxMemory == 0 {
		h.MaxMemory = 128 << 20
	}
	if h.Timeout == 0 {
		h.Timeout = caddy.Duration(2 * time.Second)
	}
	if h.MaxRequestBody == 0 {
		h.MaxRequestBody = 1 << 20
	}
	if h.MaxResponse == 0 {
		h.MaxResponse = 8 << 20
	}
	if h.Instances == 0 {
		h.Instances = 8
	}
	if h.Name == "" {
		h.Name = filepath.Base(h.Module)
	}
	if err := h.Validate(); err != nil {
		return err
	}
	h.m = metricsFor(h.Name)
	h.cur, h.wg = new(atomic.Pointer[pool]), new(sync.WaitGroup)
	if h.interpreterAfter == 0 {
		h.interpreterAfter = interpreterAfter
	}
	code, err := os.ReadFile(h.Module)
	if err != nil {
		return fmt.Errorf("edge_function: %w", err)
	}
	cacheDir := filepath.Join(caddy.AppDataDir(), "edge-functions", "compiled")
	cache, err := wazero.NewCompilationCacheWithDir(cacheDir)
	if err != nil {
		return fmt.Errorf("edge_function: compilation cache %s: %w", cacheDir, err)
	}
	start := time.Now()
	// The compiler takes about 2 s for a Go-built module the cache does
	// not hold, and 55-90 ms for one it does; the interpreter reads one in
	// about 0.25 s. So the compiler starts at once; if it has not finished
	// within interpreterAfter, the interpreter's pool serves the first
	// requests, and the compiler's takes over when it is ready (the issue
	// asks for install to first answer under 1 s with the cache cold).
	type built struct {
		p   *pool
		err error
	}
	compiled := make(chan built, 1)
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		p, err := h.newEnginePool(wazero.NewRuntimeConfigCompiler().WithCompilationCache(cache), "compiler", code)
		compiled <- built{p, err}
	}()
	var first built
	select {
	case first = <-compiled:
	case <-time.After(h.interpreterAfter):
		first.p, first.err = h.newEnginePool(wazero.NewRuntimeConfigInterpreter(), "interpreter", code)
		if first.err != nil {
			first = <-compiled
		}
	}
	if first.err != nil {
		h.wg.Wait()
		return fmt.Errorf("edge_function: %s: %w", h.Module, first.err)
	}
	h.cur.Store(first.p)
	if first.p.engine == "compiler" {
		h.m.compiled.Set(1)
	} else {
		h.m.compiled.Set(0)
	}
	h.logger.Info("edge function ready", zap.String("module", h.Module), zap.String("engine", first.p.engine),
		zap.Bool("reactor", first.p.reactor), zap.Duration("took", time.Since(start)))
	if first.p.engine == "interpreter" {
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			b := <-compiled
			if b.err != nil {
				h.logger.Error("edge function: the compiler failed; the interpreter goes on serving", zap.String("module", h.Module), zap.Error(b.err))
				return
			}
			// Swap only a pool that still serves: after Cleanup, cur is nil.
			if !h.cur.CompareAndSwap(first.p, b.p) {
				b.p.retire()
				return
			}
			first.p.retire()
			h.m.compiled.Set(1)
			h.logger.Info("edge function compiled: the compiler's pool took over from the interpreter's",
				zap.String("module", h.Module), zap.Duration("after", time.Since(start)))
		}()
	} else {
		h.wg.Wait()
	}
	return nil
}

// interpreterAfter is how long Open waits for the compiler before the
// interpreter serves.
const interpreterAfter = 150 * time.Millisecond

// newEnginePool makes a runtime of one engine for the module, compiles
// it and warms its pool.
func (h *Handler) newEnginePool(cfg wazero.RuntimeConfig, engine string, code []byte) (*pool, error) {
	// One runtime per function and engine: its memory limit is the
	// function's, and closing it closes every instance.
	cfg = cfg.WithMemoryLimitPages(uint32(h.MaxMemory / pageSize)).WithCloseOnContextDone(true)
	bg := context.Background()
	rt := wazero.NewRuntimeWithConfig(bg, cfg)
	if _, err := wasi_snapshot_preview1.Instantiate(bg, rt); err != nil {
		rt.Close(bg)
		return nil, err
	}
	if err := instantiateHost(bg, rt); err != nil {
		rt.Close(bg)
		return nil, err
	}
	compiled, err := rt.CompileModule(bg, code)
	if err != nil {
		rt.Close(bg)
		return nil, fmt.Errorf("compiling: %w", err)
	}
	p, err := newPool(h, rt, engine, compiled)
	if err != nil {
		rt.Close(bg)
		return nil, err
	}
	return p, nil
}

// acquirePool is the pool for a call, marked in use; nil once closed.
func (h *Handler) acquirePool() *pool {
	for {
		p := h.cur.Load()
		if p == nil || p.acquire() {
			return p
		}
		// Retired between the load and the acquire: the swap has stored
		// its successor already.
	}
}

// Validate checks the limits.
func (h *Handler) Validate() error {
	switch {
	case h.Module == "":
		return errors.New("edge_function: module is required")
	case h.MaxMemory < pageSize || h.MaxMemory > 4<<30:
		return fmt.Errorf("edge_function: max_memory %d: want 64KiB to 4GiB", h.MaxMemory)
	case h.Instances < 1 || h.Instances > 1024:
		return fmt.Errorf("edge_function: instances %d: want 1 to 1024", h.Instances)
	}
	return nil
}

// Cleanup closes the pool (once its calls are done) and waits for a
// compiler build still running.
func (h *Handler) Cleanup() error {
	if h.cur == nil {
		return nil // never opened
	}
	if p := h.cur.Swap(nil); p != nil {
		p.retire()
	}
	h.wg.Wait()
	return nil
}

// ServeHTTP runs the function for the request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	start := time.Now()
	status, outcome, err := h.serve(w, r)
	h.m.invocations[outcome].Inc()
	h.m.duration.Observe(time.Since(start).Seconds())
	if err != nil {
		h.logs.Do(func() {
			h.logger.Warn("edge function failed (more are counted in conductor_edge_function_invocations_total, logged at most once a second)",
				zap.String("function", h.Name), zap.String("outcome", outcome), zap.Error(err))
		})
		return caddyhttp.Error(status, err)
	}
	return nil
}

var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
