// Package bundle is the `bundle` handler and the node's store of site
// bundles. A bundle is data (shifting.Manifest): static files with their
// cache headers, redirects, rewrites, header rules and edge functions. The
// handler has its place in the operator's Caddyfile, after priority,
// waiting_room and load_gate and before edge_cache and the proxy, so a
// shifted site keeps every front-end handler, and a path the bundle does
// not cover goes on to the origin. Installing, updating and removing a
// bundle changes no Caddy config (the seed's front-end "may obtain program
// code, data, and other resources … and then independently respond to
// client requests").
package bundle

import (
	"errors"
	"net"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/conductor-edge/conductor/caddymodule/edgefn"
	"github.com/conductor-edge/conductor/caddymodule/internal/promreg"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Handler is `http.handlers.bundle`. It has no settings: what it serves
// is what the node's agent (conductor_agent) installed.
type Handler struct {
	src StoreSource
}

// StoreSource has the node's store: the conductor_agent app.
type StoreSource interface {
	BundleStore() *Store
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.bundle", New: func() caddy.Module { return new(Handler) }}
}

var requestsTotal = promreg.CounterVec("bundle", "requests_total",
	"Requests for sites with a bundle installed, by who answered: static, function, redirect, next (the handlers after it: the origin), not_found (a site without origin).",
	"site", "answer")

// Provision finds the agent, whose store outlives config reloads.
func (h *Handler) Provision(ctx caddy.Context) error {
	app, err := ctx.AppIfConfigured("conductor_agent")
	if err != nil {
		return errors.New("bundle: needs the conductor_agent global option: bundles come from the shifting manager through the node's agent")
	}
	src, ok := app.(StoreSource)
	if !ok {
		return errors.New("bundle: conductor_agent has no bundle store")
	}
	h.src = src
	if err := edgefn.RegisterMetrics(ctx); err != nil {
		return err
	}
	return promreg.Register(ctx, requestsTotal)
}

// ServeHTTP serves the request's site from its bundle, or passes it on.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	st := h.src.BundleStore()
	if st == nil {
		return next.ServeHTTP(w, r)
	}
	site := hostOf(r.Host)
	// A swap between Get and acquire retires the site we got: take the
	// new one (the loop ends, for at most one install runs at a time).
	for {
		s := st.Get(site)
		if s == nil {
			return next.ServeHTTP(w, r)
		}
		if !s.acquire() {
			continue
		}
		ans, err := s.serve(w, r, next)
		s.release()
		requestsTotal.WithLabelValues(site, string(ans)).Inc()
		return err
	}
}

func hostOf(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return strings.ToLower(strings.TrimSuffix(host, "."))
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens:
//
//	bundle
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if d.NextArg() || d.NextBlock(0) {
		return d.Err("bundle takes no arguments: what it serves is what the agent installed")
	}
	return nil
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	b := new(Handler)
	err := b.UnmarshalCaddyfile(h.Dispenser)
	return b, err
}

func init() {
	httpcaddyfile.RegisterHandlerDirective("bundle", parseCaddyfile)
}

var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
	_ caddyfile.Unmarshaler       = (*Handler)(nil)
)
