package redirect

import (
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("conductor_redirect", func(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
		r := new(Handler)
		return r, r.UnmarshalCaddyfile(h.Dispenser)
	})
	// First of all: a client that belongs on a front-end costs the origin
	// nothing but the redirect.
	httpcaddyfile.RegisterDirectiveOrder("conductor_redirect", httpcaddyfile.Before, "header")
}

// UnmarshalCaddyfile:
//
//	conductor_redirect [<matcher>] {
//	    manager      <url...>
//	    ca_file      <PEM file>
//	    node         <name>
//	    join_token   <token>
//	    identity_dir <dir>
//	    fleet        <name>
//	    site         <name>
//	    region       <cidr> <region>    (repeatable)
//	    max_load     <load>
//	    status       307|308
//	    port         <front-ends' HTTP port>
//	    scheme       http|https
//	    cookie       <name> [<max age>]
//	    max_age      <duration>
//	}
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		opt := d.Val()
		args := d.RemainingArgs()
		if len(args) == 0 {
			return d.ArgErr()
		}
		one := func() (string, error) {
			if len(args) != 1 {
				return "", d.Errf("conductor_redirect: %s takes one value", opt)
			}
			return args[0], nil
		}
		var v string
		var err error
		switch opt {
		case "manager":
			h.Managers = append(h.Managers, args...)
			continue
		case "region":
			if len(args) != 2 {
				return d.Errf("conductor_redirect: region <cidr> <region>")
			}
			h.Regions = append(h.Regions, Region{CIDR: args[0], Region: args[1]})
			continue
		case "cookie":
			if len(args) > 2 {
				return d.ArgErr()
			}
			h.Cookie = args[0]
			if len(args) == 2 {
				dur, err := caddy.ParseDuration(args[1])
				if err != nil || dur <= 0 {
					return d.Errf("conductor_redirect: cookie max age %q: want a positive duration", args[1])
				}
				h.CookieMaxAge = caddy.Duration(dur)
			}
			continue
		}
		if v, err = one(); err != nil {
			return err
		}
		switch opt {
		case "ca_file":
			h.CAFile = v
		case "node":
			h.Node = v
		case "join_token":
			h.JoinToken = v
		case "identity_dir":
			h.IdentityDir = v
		case "fleet":
			h.Fleet = v
		case "site":
			h.Site = v
		case "scheme":
			if v != "http" && v != "https" {
				return d.Errf("conductor_redirect: scheme %q: http or https", v)
			}
			h.Scheme = v
		case "max_load":
			f, perr := strconv.ParseFloat(v, 64)
			if perr != nil || f <= 0 {
				return d.Errf("conductor_redirect: max_load %q: want a positive number", v)
			}
			h.MaxLoad = f
		case "status":
			n, perr := strconv.Atoi(v)
			if perr != nil || n != 307 && n != 308 {
				return d.Errf("conductor_redirect: status %q: 307 or 308", v)
			}
			h.Status = n
		case "port":
			n, perr := strconv.Atoi(v)
			if perr != nil || n <= 0 || n > 65535 {
				return d.Errf("conductor_redirect: port %q", v)
			}
			h.Port = n
		case "max_age":
			dur, perr := caddy.ParseDuration(v)
			if perr != nil || dur <= 0 {
				return d.Errf("conductor_redirect: max_age %q: want a positive duration", v)
			}
			h.MaxAge = caddy.Duration(dur)
		default:
			return d.Errf("conductor_redirect: unknown option %q", opt)
		}
	}
	return nil
}

var _ caddyfile.Unmarshaler = (*Handler)(nil)
