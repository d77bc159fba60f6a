package agent

import (
	"fmt"
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
)

func init() {
	caddy.RegisterModule(Upstreams{})
}

// Upstreams is `http.reverse_proxy.upstreams.conductor`: a front-end's
// back-ends for a site are the ones the manager assigned it, followed live
// (the agent's long-poll), with no reload:
//
//	reverse_proxy {
//		dynamic conductor [<site>] {
//			fallback <host:port>...
//		}
//		transport tmp
//	}
//
// The site defaults to the request's host. Until the manager has given an
// assignment for it (or with the manager unreachable and nothing
// assigned), the fallback upstreams serve. A back-end the manager
// releases leaves the list: new requests go to the others, and requests
// in flight finish on their streams.
type Upstreams struct {
	Site     string   `json:"site,omitempty"`
	Fallback []string `json:"fallback,omitempty"`

	agent    *App
	fallback []*reverseproxy.Upstream
}

// CaddyModule returns the Caddy module information.
func (Upstreams) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.reverse_proxy.upstreams.conductor", New: func() caddy.Module { return new(Upstreams) }}
}

// Provision finds the agent.
func (u *Upstreams) Provision(ctx caddy.Context) error {
	u.agent = agentOf(ctx)
	if u.agent == nil {
		return fmt.Errorf("dynamic conductor: needs the conductor_agent global option (the manager's back-end assignment comes through it)")
	}
	if u.Site == "" {
		u.Site = "{http.request.host}"
	}
	for _, f := range u.Fallback {
		u.fallback = append(u.fallback, &reverseproxy.Upstream{Dial: f})
	}
	return nil
}

// GetUpstreams returns the site's assigned back-ends, or the fallback.
func (u *Upstreams) GetUpstreams(r *http.Request) ([]*reverseproxy.Upstream, error) {
	site := u.Site
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		site = repl.ReplaceAll(site, "")
	}
	site = siteOf(site)
	if w := u.agent.worker(); w != nil {
		if m := w.backends.Load(); m != nil {
			if ups := (*m)[site]; len(ups) > 0 {
				out := make([]*reverseproxy.Upstream, len(ups))
				for i, a := range ups {
					out[i] = &reverseproxy.Upstream{Dial: a}
				}
				return out, nil
			}
		}
	}
	if len(u.fallback) == 0 {
		return nil, fmt.Errorf("no back-end assigned to %s, and no fallback", site)
	}
	return u.fallback, nil
}

// UnmarshalCaddyfile sets up the module from Caddyfile tokens.
func (u *Upstreams) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // "conductor"
	if d.NextArg() {
		u.Site = d.Val()
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "fallback":
			u.Fallback = append(u.Fallback, d.RemainingArgs()...)
			if len(u.Fallback) == 0 {
				return d.ArgErr()
			}
		default:
			return d.Errf("dynamic conductor: unknown option %q", d.Val())
		}
	}
	return nil
}

var (
	_ reverseproxy.UpstreamSource = (*Upstreams)(nil)
	_ caddy.Provisioner           = (*Upstreams)(nil)
	_ caddyfile.Unmarshaler       = (*Upstreams)(nil)
)
