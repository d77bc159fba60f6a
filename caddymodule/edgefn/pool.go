package edgefn

import (
	"context"
	crand "crypto/rand"
	"errors"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// pool holds one function's instances. A reactor module's instance serves
// request after request (its `_initialize` ran once); a command module's
// serves one (`_start` runs the program to its end). At most
// Handler.Instances exist at once; an instance that trapped, timed out or
// broke a limit is closed, never reused.
//
// A pool has its own runtime (engine): the first requests after an
// install may be served by the interpreter's pool while the compiler's is
// built, and the handler then swaps pools (handler.go). A retired pool
// takes no new calls; its runtime closes when its last call is done.
type pool struct {
	h        *Handler
	rt       wazero.Runtime
	engine   string // "compiler" or "interpreter"
	compiled wazero.CompiledModule
	reactor  bool
	idle     chan *instance // reactor instances ready for a call
	slots    chan struct{}  // one token per live instance
	mu       sync.Mutex
	closed   bool
	users    int // calls using the pool, under mu
	live     int // instances alive, under mu
}

// instance is one instantiated module and the pipes of its current call.
type instance struct {
	mod   api.Module
	entry api.Function // conductor_handle, or _start
	io    *callIO
}

const (
	exportHandle = "conductor_handle"
	exportStart  = "_start"
	exportInit   = "_initialize"
)

func newPool(h *Handler, rt wazero.Runtime, engine string, compiled wazero.CompiledModule) (*pool, error) {
	exports := compiled.ExportedFunctions()
	p := &pool{h: h, rt: rt, engine: engine, compiled: compiled, idle: make(chan *instance, h.Instances), slots: make(chan struct{}, h.Instances)}
	switch {
	case exports[exportHandle] != nil:
		p.reactor = true
	case exports[exportStart] != nil:
	default:
		return nil, errors.New("the module exports neither conductor_handle (a reactor) nor _start (a command)")
	}
	if p.reactor {
		// Warm one instance now: a module that cannot start fails the
		// config load, not its first request.
		p.slots <- struct{}{}
		inst, err := p.instantiate()
		if err != nil {
			<-p.slots
			return nil, err
		}
		p.idle <- inst
	}
	return p, nil
}

// instantiate makes an instance. Nothing ambient is granted: no
// filesystem, no sockets, no host environment; real clocks and a crypto
// random source, as WASI gives them.
func (p *pool) instantiate() (*instance, error) {
	cio := &callIO{}
	cfg := wazero.NewModuleConfig().
		WithName(""). // anonymous: many instances of one module
		WithStdin(cio).WithStdout(cio).WithStderr(&logWriter{h: p.h}).
		WithSysWalltime().WithSysNanotime().WithRandSource(crand.Reader).
		WithStartFunctions()
	for k, v := range p.h.Env {
		cfg = cfg.WithEnv(k, v)
	}
	if p.reactor && p.compiled.ExportedFunctions()[exportInit] != nil {
		cfg = cfg.WithStartFunctions(exportInit)
	}
	// A reactor's initialization gets ten times a call's time.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Duration(p.h.Timeout))
	defer cancel()
	mod, err := p.rt.InstantiateModule(ctx, p.compiled, cfg)
	if err != nil {
		return nil, err
	}
	name := exportStart
	if p.reactor {
		name = exportHandle
	}
	p.mu.Lock()
	p.live++
	p.mu.Unlock()
	p.h.m.live.Inc()
	return &instance{mod: mod, entry: mod.ExportedFunction(name), io: cio}, nil
}

var errBusy = errors.New("every instance is busy")

// get takes an idle instance, or makes one if fewer than Instances exist,
// or waits for one until ctx is done.
func (p *pool) get(ctx context.Context) (*instance, error) {
	select {
	case inst := <-p.idle:
		return inst, nil
	default:
	}
	select {
	case inst := <-p.idle:
		return inst, nil
	case p.slots <- struct{}{}:
		inst, err := p.instantiate()
		if err != nil {
			<-p.slots
			return nil, err
		}
		return inst, nil
	case <-ctx.Done():
		return nil, errBusy
	}
}

// put returns an instance after a call: a healthy reactor instance goes
// back to the idle set; any other is closed and its slot freed.
func (p *pool) put(inst *instance, healthy bool) {
	inst.io.reset(nil, 0)
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if healthy && p.reactor && !closed {
		p.idle <- inst // room: every instance has a slot, and idle holds at most that many
		return
	}
	inst.mod.Close(context.Background())
	p.mu.Lock()
	p.live--
	p.mu.Unlock()
	p.h.m.live.Dec()
	<-p.slots
}

// acquire marks a call as using the pool; false once it is retired.
func (p *pool) acquire() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.users++
	return true
}

// release ends a call's use; the last one out of a retired pool closes it.
func (p *pool) release() {
	p.mu.Lock()
	p.users--
	last := p.closed && p.users == 0
	p.mu.Unlock()
	if last {
		p.shutdown()
	}
}

// retire stops new calls; the pool closes once the calls in it are done.
func (p *pool) retire() {
	p.mu.Lock()
	p.closed = true
	last := p.users == 0
	p.mu.Unlock()
	if last {
		p.shutdown()
	}
}

// shutdown closes the runtime, which ends every instance; they leave the
// gauge here.
func (p *pool) shutdown() {
	p.mu.Lock()
	p.h.m.live.Sub(float64(p.live))
	p.live = 0
	p.mu.Unlock()
	p.rt.Close(context.Background())
}
