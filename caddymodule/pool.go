package caddymodule

import (
	"context"
	"crypto/rand"
	"errors"
	"io/fs"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/conductor-edge/conductor/tmptransport"
)

// upstreams holds one TMP Redialer per back-end address, shared by every
// config. A config takes a reference to an address on its first request
// there and gives it back in Cleanup. A session whose last reference goes
// stays open for upstreamGrace before it closes: Caddy provisions a new
// config before cleaning up the old one, but the new config takes its
// references lazily, on first use, so without the grace a reload would
// close and redial every link. (caddy.UsagePool destroys at zero
// references, which is why it is not used here.)
var upstreams = &upstreamRegistry{m: map[string]*upstream{}}

const upstreamGrace = time.Minute

type upstreamRegistry struct {
	mu sync.Mutex
	m  map[string]*upstream
}

// upstream is a pooled session keeper for one back-end.
type upstream struct {
	addr  string
	creds credsRef // the credentials of the config that used it last
	r     *tmptransport.Redialer
	refs  int
	idle  *time.Timer
}

func (g *upstreamRegistry) acquire(addr string, creds *credentials, cfg func(*credsRef) *tmptransport.Config) *upstream {
	g.mu.Lock()
	defer g.mu.Unlock()
	u := g.m[addr]
	if u == nil {
		u = &upstream{addr: addr}
		u.creds.p.Store(creds)
		u.r = tmptransport.NewRedialer(addr, cfg(&u.creds))
		g.m[addr] = u
	}
	u.creds.p.Store(creds)
	if u.idle != nil {
		u.idle.Stop()
		u.idle = nil
	}
	u.refs++
	return u
}

func (g *upstreamRegistry) release(u *upstream) {
	g.mu.Lock()
	defer g.mu.Unlock()
	u.refs--
	if u.refs > 0 {
		return
	}
	u.idle = time.AfterFunc(upstreamGrace, func() {
		g.mu.Lock()
		if u.refs > 0 || g.m[u.addr] != u {
			g.mu.Unlock()
			return
		}
		delete(g.m, u.addr)
		g.mu.Unlock()
		u.r.Close()
	})
}

// each calls fn for every upstream (for metrics).
func (g *upstreamRegistry) each(fn func(*upstream)) {
	g.mu.Lock()
	us := make([]*upstream, 0, len(g.m))
	for _, u := range g.m {
		us = append(us, u)
	}
	g.mu.Unlock()
	for _, u := range us {
		fn(u)
	}
}

// heldUpstreams are the upstreams one config holds a reference to.
type heldUpstreams struct {
	mu sync.Mutex
	m  map[string]*upstream
}

// upstreamFor returns the session keeper for addr, taking this config's
// reference on first use.
func (a *App) upstreamFor(addr string) *upstream {
	a.refs.mu.Lock()
	defer a.refs.mu.Unlock()
	if u := a.refs.m[addr]; u != nil {
		return u
	}
	u := upstreams.acquire(addr, a.creds, func(ref *credsRef) *tmptransport.Config { return a.tmpConfig(false, ref) })
	if a.refs.m == nil {
		a.refs.m = map[string]*upstream{}
	}
	a.refs.m[addr] = u
	return u
}

// resetKey returns the listener's stateless reset key, kept in Caddy's
// storage so that it survives restarts: a front-end then learns of a
// back-end restart from the first packet it sends (SPEC.md §6.4).
func resetKey(ctx caddy.Context) ([]byte, error) {
	const key = "conductor/tmp_stateless_reset_key"
	st := ctx.Storage()
	b, err := st.Load(ctx, key)
	if err == nil && len(b) == 32 {
		return b, nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	b = make([]byte, 32)
	rand.Read(b)
	if err := st.Store(ctx, key, b); err != nil {
		return nil, err
	}
	return b, nil
}

// session returns a live session to the upstream, dialing if needed.
func (u *upstream) session(ctx context.Context) (*tmptransport.Session, error) {
	return u.r.Session(ctx)
}
