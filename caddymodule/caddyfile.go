package caddymodule

import (
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// All Caddyfile parsing lives here; it fills the same structs as JSON, so
// the two cannot drift (adapt tests in testdata/caddyfile_adapt prove it).

func init() {
	httpcaddyfile.RegisterGlobalOption("conductor", parseGlobalConductor)
}

// parseGlobalConductor parses the global option:
//
//	conductor {
//		name         <node name>
//		role         frontend|backend|both
//		region       <region>
//		weights      <w0> <w1> <w2> <w3> <w4>
//		idle_timeout <duration>
//		max_streams  <n>
//		handshake_timeout <duration>
//		max_half_open <n> [<per prefix>]
//		retry        auto|always
//		service      <name> <host:port> [{ proxy_protocol v1|v2 }]   (back-end; one per service)
//		tls {
//			cert_file     <path>
//			key_file      <path>
//			ca_file       <path>
//			ca            <pki ca id>
//			fleet         <name>
//			cert_lifetime <duration>
//			server_name   <name>
//		}
//	}
func parseGlobalConductor(d *caddyfile.Dispenser, _ any) (any, error) {
	app := new(App)
	if err := app.UnmarshalCaddyfile(d); err != nil {
		return nil, err
	}
	return httpcaddyfile.App{Name: "conductor", Value: caddyconfig.JSON(app, nil)}, nil
}

// UnmarshalCaddyfile fills the app from its global option block.
func (a *App) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // "conductor"
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		opt := d.Val()
		switch opt {
		case "name", "role", "region":
			if !d.NextArg() {
				return d.ArgErr()
			}
			v := d.Val()
			if d.NextArg() {
				return d.ArgErr()
			}
			switch opt {
			case "name":
				a.Name = v
			case "role":
				if v != "frontend" && v != "backend" && v != "both" {
					return d.Errf("conductor: role %q: want frontend, backend or both", v)
				}
				a.Role = v
			case "region":
				a.Region = v
			}
		case "service":
			args := d.RemainingArgs()
			if len(args) != 2 {
				return d.Errf("conductor: service <name> <host:port>")
			}
			if a.Services == nil {
				a.Services = map[string]*Service{}
			}
			if _, dup := a.Services[args[0]]; dup {
				return d.Errf("conductor: service %q is listed twice", args[0])
			}
			svc := &Service{Dial: args[1]}
			for nesting := d.Nesting(); d.NextBlock(nesting); {
				switch d.Val() {
				case "proxy_protocol":
					if !d.NextArg() {
						return d.ArgErr()
					}
					svc.ProxyProtocol = d.Val()
				default:
					return d.Errf("conductor: service %s: unrecognized option %q (want proxy_protocol)", args[0], d.Val())
				}
			}
			if err := svc.validate(args[0]); err != nil {
				return d.Err(err.Error())
			}
			a.Services[args[0]] = svc
		case "weights":
			args := d.RemainingArgs()
			if len(args) != 5 {
				return d.Errf("conductor: weights takes 5 values (priorities 0..4), got %d", len(args))
			}
			a.Weights = nil
			for i, s := range args {
				w, err := strconv.Atoi(s)
				if err != nil || w < 1 {
					return d.Errf("conductor: weight of priority %d is %q; want an integer ≥ 1", i, s)
				}
				a.Weights = append(a.Weights, w)
			}
		case "idle_timeout", "handshake_timeout":
			if !d.NextArg() {
				return d.ArgErr()
			}
			dur, err := caddy.ParseDuration(d.Val())
			if err != nil || dur <= 0 {
				return d.Errf("conductor: %s %q: want a positive duration", opt, d.Val())
			}
			if opt == "idle_timeout" {
				a.IdleTimeout = caddy.Duration(dur)
			} else {
				a.HandshakeTimeout = caddy.Duration(dur)
			}
		case "max_half_open":
			args := d.RemainingArgs()
			if len(args) < 1 || len(args) > 2 {
				return d.Errf("conductor: max_half_open takes <n> [<per prefix>]")
			}
			for i, v := range args {
				n, err := strconv.Atoi(v)
				if err != nil || n < 1 {
					return d.Errf("conductor: max_half_open %q: want a positive integer", v)
				}
				if i == 0 {
					a.MaxHalfOpen = n
				} else {
					a.MaxHalfOpenPerPrefix = n
				}
			}
		case "retry":
			if !d.NextArg() {
				return d.ArgErr()
			}
			if v := d.Val(); v != "auto" && v != "always" {
				return d.Errf("conductor: retry %q: want auto or always", v)
			}
			a.Retry = d.Val()
		case "max_streams":
			if !d.NextArg() {
				return d.ArgErr()
			}
			n, err := strconv.Atoi(d.Val())
			if err != nil || n < 1 {
				return d.Errf("conductor: max_streams %q: want a positive integer", d.Val())
			}
			a.MaxStreams = n
		case "tls":
			if a.TLS == nil {
				a.TLS = new(TLSConfig)
			}
			for nesting := d.Nesting(); d.NextBlock(nesting); {
				sub := d.Val()
				if !d.NextArg() {
					return d.ArgErr()
				}
				v := d.Val()
				switch sub {
				case "cert_file":
					a.TLS.CertFile = v
				case "key_file":
					a.TLS.KeyFile = v
				case "ca_file":
					a.TLS.CAFile = v
				case "ca":
					a.TLS.CA = v
				case "server_name":
					a.TLS.ServerName = v
				case "fleet":
					a.TLS.Fleet = v
				case "cert_lifetime":
					dur, err := caddy.ParseDuration(v)
					if err != nil || dur < time.Minute {
						return d.Errf("conductor: cert_lifetime %q: want a duration of at least 1m", v)
					}
					a.TLS.CertLifetime = caddy.Duration(dur)
				default:
					return d.Errf("conductor: unrecognized tls option %q (want cert_file, key_file, ca_file, ca, fleet, cert_lifetime or server_name)", sub)
				}
				if d.NextArg() {
					return d.ArgErr()
				}
			}
		default:
			return d.Errf("conductor: unrecognized option %q (want name, role, region, weights, idle_timeout, max_streams, handshake_timeout, max_half_open, retry or tls)", opt)
		}
	}
	return nil
}

// UnmarshalCaddyfile parses the transport:
//
//	transport tmp {
//		default_priority        <0-4>
//		compress
//		dial_timeout            <duration>
//		response_header_timeout <duration>
//		max_idle_streams        <n>
//	}
func (t *Transport) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // "tmp"
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		opt := d.Val()
		switch opt {
		case "compress":
			if d.NextArg() {
				return d.ArgErr()
			}
			t.Compress = true
		case "default_priority":
			if !d.NextArg() {
				return d.ArgErr()
			}
			p, err := strconv.Atoi(d.Val())
			if err != nil || p < 0 || p > 4 {
				return d.Errf("tmp transport: default_priority %q: want 0 (most urgent) to 4", d.Val())
			}
			t.DefaultPriority = &p
		case "dial_timeout", "response_header_timeout":
			if !d.NextArg() {
				return d.ArgErr()
			}
			dur, err := caddy.ParseDuration(d.Val())
			if err != nil {
				return d.Errf("tmp transport: %s %q: %v", opt, d.Val(), err)
			}
			if opt == "dial_timeout" {
				t.DialTimeout = caddy.Duration(dur)
			} else {
				t.ResponseHeaderTimeout = caddy.Duration(dur)
			}
		case "max_idle_streams":
			if !d.NextArg() {
				return d.ArgErr()
			}
			n, err := strconv.Atoi(d.Val())
			if err != nil || n < 0 {
				return d.Errf("tmp transport: max_idle_streams %q: want a whole number, 0 to keep none", d.Val())
			}
			t.MaxIdleStreams = &n
		default:
			return d.Errf("tmp transport: unrecognized option %q (want default_priority, compress, dial_timeout, response_header_timeout or max_idle_streams)", opt)
		}
	}
	return nil
}

var (
	_ caddyfile.Unmarshaler = (*App)(nil)
	_ caddyfile.Unmarshaler = (*Transport)(nil)
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("priority", parsePriority)
	// Early, so that everything after it (caching, fallback, admission,
	// the proxy) sees the request's priority.
	// The admission handlers, in the order a request meets them: classified
	// (priority), in line (waiting_room), paced by the origin's load
	// (load_gate), and given a substitute if the origin fails (fallback),
	// around edge_cache (before rewrite), so a stale copy comes first.
	// adapt then classifies the client (its class reaches esi's fragments
	// and the origin), and esi comes before edge_cache, so the cache holds
	// the template and each fragment, never an assembled page. bundle
	// follows (a bundle's pages can be ESI templates), still before
	// edge_cache: its files are local already, and what it does not cover
	// goes on through the cache to the origin.
	// conductor_meter, first of all, counts requests per site for the
	// manager; conductor_pull then asks it for sites this node lacks. Caddy
	// only anchors on standard directives, and each one placed after vars
	// goes right after it: hence the reverse order.
	for _, d := range []string{"bundle", "esi", "adapt", "fallback", "load_gate", "waiting_room", "priority", "conductor_pull", "conductor_meter"} {
		httpcaddyfile.RegisterDirectiveOrder(d, httpcaddyfile.After, "vars")
	}
}

// parsePriority parses:
//
//	priority {
//		default <0-4>
//		<0-4> <matcher> [args...]
//		<0-4> {
//			<matcher> [args...]
//			...
//		}
//	}
//
// Rules are tried in order; matchers are Caddy's request matchers, plus
// `cookie <name> [<value>]`.
func parsePriority(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	p := new(Priority)
	h.Next() // "priority"
	if h.NextArg() {
		return nil, h.ArgErr()
	}
	for h.NextBlock(0) {
		tok := h.Val()
		switch tok {
		case "signing_key":
			keys := h.RemainingArgs()
			if len(keys) == 0 {
				return nil, h.ArgErr()
			}
			p.SigningKeys = append(p.SigningKeys, keys...)
			continue
		case "bypass_budget":
			b, err := parseBypassBudget(h.Dispenser)
			if err != nil {
				return nil, err
			}
			p.BypassBudget = b
			continue
		}
		if tok == "default" {
			if !h.NextArg() {
				return nil, h.ArgErr()
			}
			v, err := strconv.Atoi(h.Val())
			if err != nil || v < 0 || v > 4 {
				return nil, h.Errf("priority: default %q: want 0 (most urgent) to 4", h.Val())
			}
			p.Default = &v
			if h.NextArg() {
				return nil, h.ArgErr()
			}
			continue
		}
		v, err := strconv.Atoi(tok)
		if err != nil || v < 0 || v > 4 {
			return nil, h.Errf("priority: %q: want default, or a priority 0 (most urgent) to 4 followed by matchers", tok)
		}
		set, err := caddyhttp.ParseCaddyfileNestedMatcherSet(h.Dispenser)
		if err != nil {
			return nil, err
		}
		if len(set) == 0 {
			return nil, h.Errf("priority %d: no matchers", v)
		}
		p.Rules = append(p.Rules, PriorityRule{Priority: v, MatchRaw: set})
	}
	return p, nil
}

// UnmarshalCaddyfile parses `cookie <name> [<value>] [signed]`.
func (m *MatchCookie) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // "cookie"
	args := d.RemainingArgs()
	if n := len(args); n > 0 && args[n-1] == "signed" {
		m.Signed = true
		args = args[:n-1]
	}
	if len(args) < 1 || len(args) > 2 {
		return d.ArgErr()
	}
	m.Name = args[0]
	if len(args) == 2 {
		m.Value = args[1]
	}
	return nil
}

// parseBypassBudget parses
//
//	bypass_budget <per client/s> [burst <n>] [capacity <rps> [share <fraction>]] [priority <n>]
func parseBypassBudget(d *caddyfile.Dispenser) (*BypassBudget, error) {
	args := d.RemainingArgs()
	if len(args) == 0 {
		return nil, d.ArgErr()
	}
	b := new(BypassBudget)
	num := func(s string) (float64, error) {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil || v <= 0 {
			return 0, d.Errf("priority: bypass_budget %q: want a positive number", s)
		}
		return v, nil
	}
	var err error
	if b.PerClient, err = num(args[0]); err != nil {
		return nil, err
	}
	for i := 1; i < len(args); i += 2 {
		if i+1 >= len(args) {
			return nil, d.Errf("priority: bypass_budget: %s takes a value", args[i])
		}
		if args[i] == "priority" {
			p, err := strconv.Atoi(args[i+1])
			if err != nil || p < 0 || p > 4 {
				return nil, d.Errf("priority: bypass_budget priority %q: want 0 to 4", args[i+1])
			}
			b.BypassPriority = &p
			continue
		}
		v, err := num(args[i+1])
		if err != nil {
			return nil, err
		}
		switch args[i] {
		case "burst":
			b.Burst = int(v)
		case "capacity":
			b.Capacity = v
		case "share":
			if v > 1 {
				return nil, d.Errf("priority: bypass_budget share %v: want a fraction of capacity, at most 1", v)
			}
			b.Share = v
		default:
			return nil, d.Errf("priority: bypass_budget: unknown option %q (want burst, capacity, share or priority)", args[i])
		}
	}
	return b, nil
}
