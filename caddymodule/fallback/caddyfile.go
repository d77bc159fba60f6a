package fallback

import (
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("fallback", func(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
		f := new(Handler)
		return f, f.UnmarshalCaddyfile(h.Dispenser)
	})
}

// UnmarshalCaddyfile:
//
//	fallback [<matcher>] {
//	    not_found     <file or directory> [<status>]
//	    error_page    <template file>
//	    retry         <duration>
//	    slow          <duration>
//	    slow_page     <template file>
//	    slow_continue <duration>
//	    site_name     <text>
//	}
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		sub := d.Val()
		args := d.RemainingArgs()
		if len(args) == 0 {
			return d.ArgErr()
		}
		duration := func() (caddy.Duration, error) {
			v, err := caddy.ParseDuration(args[0])
			if err != nil || v <= 0 {
				return 0, d.Errf("fallback: %s %q: want a positive duration", sub, args[0])
			}
			return caddy.Duration(v), nil
		}
		var err error
		switch sub {
		case "not_found":
			h.NotFound = args[0]
			if len(args) > 1 {
				n, perr := strconv.Atoi(args[1])
				if perr != nil || n < 200 || n > 599 {
					return d.Errf("fallback: not_found status %q: want 200-599", args[1])
				}
				h.NotFoundStatus = n
			}
		case "error_page":
			h.ErrorPage = args[0]
		case "retry":
			h.Retry, err = duration()
		case "slow":
			h.Slow, err = duration()
		case "slow_page":
			h.SlowPage = args[0]
		case "slow_continue":
			h.SlowContinue, err = duration()
		case "site_name":
			h.SiteName = args[0]
		default:
			return d.Errf("fallback: unknown option %q (want not_found, error_page, retry, slow, slow_page, slow_continue or site_name)", sub)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
