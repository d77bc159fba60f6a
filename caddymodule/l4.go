package caddymodule

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/mholt/caddy-l4/layer4"

	"github.com/conductor-edge/conductor/caddymodule/priority"
	"github.com/conductor-edge/conductor/tmptransport"
)

func init() {
	caddy.RegisterModule(new(L4Handler))
}

// L4Handler is `layer4.handlers.tmp`, a handler of caddy-l4's `layer4` app
// on a front-end. It carries each connection the layer4 route gives it as
// one TMP stream, naming a service, to a back-end that lists that service
// (`conductor { service … }`), which connects it to the origin. The stream
// rides the same pooled session as the front-end's HTTP (one link per
// front-end/back-end pair, blended by priority), and half-close and reset
// pass through both ways (splice.go). caddy-l4's matchers and its `tls`
// handler come first, so a front-end can terminate TLS for a service and
// carry the plaintext.
type L4Handler struct {
	// Upstream is the back-end's TMP address (host:port).
	Upstream string `json:"upstream"`
	// Service names the service at the back-end.
	Service string `json:"service"`
	// Priority of the stream on the link (0 most urgent … 4); default 3,
	// below interactive web traffic.
	Priority *int `json:"priority,omitempty"`
	// DialTimeout bounds getting the session and opening the stream
	// (default 10s).
	DialTimeout caddy.Duration `json:"dial_timeout,omitempty"`

	app *App
}

// CaddyModule returns the Caddy module information.
func (*L4Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "layer4.handlers.tmp", New: func() caddy.Module { return new(L4Handler) }}
}

const defaultL4Priority = 3

// Provision finds the conductor app, whose session pool the handler uses.
func (h *L4Handler) Provision(ctx caddy.Context) error {
	if h.Upstream == "" || h.Service == "" {
		return fmt.Errorf("layer4 tmp: upstream and service are required")
	}
	if !tmptransport.ValidServiceName(h.Service) {
		return fmt.Errorf("layer4 tmp: service %q: 1-%d characters of [A-Za-z0-9._-]", h.Service, tmptransport.MaxServiceName)
	}
	if h.Priority != nil && !priority.Valid(*h.Priority) {
		return fmt.Errorf("layer4 tmp: priority %d out of range 0..%d", *h.Priority, priority.Levels-1)
	}
	if h.DialTimeout <= 0 {
		h.DialTimeout = caddy.Duration(10 * time.Second)
	}
	app, err := ctx.App("conductor")
	if err != nil {
		return fmt.Errorf("layer4 tmp: %v", err)
	}
	h.app = app.(*App)
	return nil
}

// Handle carries the connection to the back-end. It is the end of the
// route: there is no next handler for a connection the back-end now owns.
func (h *L4Handler) Handle(cx *layer4.Connection, _ layer4.Handler) error {
	prio := defaultL4Priority
	if h.Priority != nil {
		prio = *h.Priority
	}
	ctx, cancel := context.WithTimeout(cx.Context, time.Duration(h.DialTimeout))
	sess, err := h.app.upstreamFor(h.Upstream).session(ctx)
	if err != nil {
		cancel()
		return fmt.Errorf("layer4 tmp: %s: %w", h.Upstream, err)
	}
	// The client's address and where it arrived travel with the stream,
	// so that the back-end can tell the origin (proxy_protocol).
	src, dst := addrPort(cx.RemoteAddr()), addrPort(cx.LocalAddr())
	st, err := sess.OpenStreamOptions(ctx, tmptransport.OpenStreamOptions{Priority: tmptransport.Priority(prio), Service: h.Service, Source: src, Destination: dst})
	cancel()
	if err != nil {
		return fmt.Errorf("layer4 tmp: %s: open stream: %w", h.Upstream, err)
	}
	splice(st, tcpSide{rw: cx, conn: cx.Conn})
	return nil
}

// addrPort is a TCP address as a netip.AddrPort (invalid for anything else).
func addrPort(a net.Addr) netip.AddrPort {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.AddrPort()
	}
	return netip.AddrPort{}
}

// UnmarshalCaddyfile:
//
//	tmp <back-end host:port> <service> {
//	    priority     <0-4>
//	    dial_timeout <duration>
//	}
func (h *L4Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // "tmp"
	if !d.Args(&h.Upstream, &h.Service) {
		return d.Errf("tmp <back-end host:port> <service>")
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(d.Nesting()) {
		var v string
		opt := d.Val()
		if !d.Args(&v) {
			return d.ArgErr()
		}
		switch opt {
		case "priority":
			n, err := strconv.Atoi(v)
			if err != nil || !priority.Valid(n) {
				return d.Errf("tmp: priority %q: want 0 to %d", v, priority.Levels-1)
			}
			h.Priority = &n
		case "dial_timeout":
			dur, err := caddy.ParseDuration(v)
			if err != nil || dur <= 0 {
				return d.Errf("tmp: dial_timeout %q: want a positive duration", v)
			}
			h.DialTimeout = caddy.Duration(dur)
		default:
			return d.Errf("tmp: unknown option %q", opt)
		}
	}
	return nil
}

var (
	_ caddy.Provisioner     = (*L4Handler)(nil)
	_ caddyfile.Unmarshaler = (*L4Handler)(nil)
	_ layer4.NextHandler    = (*L4Handler)(nil)
)
