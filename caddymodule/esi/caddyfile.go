package esi

import (
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"
)

// The directive's place in the chain (after the admission handlers,
// before edge_cache) is set with theirs, in caddymodule.
func init() {
	httpcaddyfile.RegisterHandlerDirective("esi", func(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
		e := new(Handler)
		return e, e.UnmarshalCaddyfile(h.Dispenser)
	})
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens:
//
//	esi {
//	    allow        <host|*.domain...>
//	    max_depth    <n>
//	    max_includes <n>
//	    parallel     <n>
//	    timeout      <duration>
//	    max_bytes    <size>
//	    site         <label for metrics>
//	}
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		sub := d.Val()
		if sub == "allow" {
			h.Allow = append(h.Allow, d.RemainingArgs()...)
			if len(h.Allow) == 0 {
				return d.ArgErr()
			}
			continue
		}
		if !d.NextArg() {
			return d.ArgErr()
		}
		v := d.Val()
		var err error
		switch sub {
		case "max_depth":
			h.MaxDepth, err = strconv.Atoi(v)
		case "max_includes":
			h.MaxIncludes, err = strconv.Atoi(v)
		case "parallel":
			h.Parallel, err = strconv.Atoi(v)
		case "timeout":
			var t caddy.Duration
			t, err = parseDuration(v)
			h.Timeout = t
		case "max_bytes":
			var n uint64
			n, err = humanize.ParseBytes(v)
			h.MaxBytes = int64(n)
		case "site":
			h.Site = v
		default:
			return d.Errf("esi: unknown subdirective %q", sub)
		}
		if err != nil {
			return d.Errf("esi: %s: invalid value %q", sub, v)
		}
		if d.NextArg() {
			return d.ArgErr()
		}
	}
	return nil
}

func parseDuration(s string) (caddy.Duration, error) {
	d, err := caddy.ParseDuration(s)
	return caddy.Duration(d), err
}

var _ caddyfile.Unmarshaler = (*Handler)(nil)
