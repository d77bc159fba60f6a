package edgecache

import (
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"

	"github.com/conductor-edge/conductor/caddymodule/selfrequest"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("edge_cache", parseCaddyfile)
	// Early, like Souin's cache: before the handlers that answer requests,
	// after the ones that only rewrite them; priority runs first so that
	// background fetches are classified as their clients were.
	httpcaddyfile.RegisterDirectiveOrder("edge_cache", httpcaddyfile.Before, "rewrite")
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	c := new(Handler)
	err := c.UnmarshalCaddyfile(h.Dispenser)
	return c, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens:
//
//	edge_cache [<name>] {
//	    site                   <label for metrics>
//	    max_size               <size>
//	    max_entry_size         <size>
//	    policy                 tinylfu|lru|lfu|fifo|random
//	    disk                   <dir> [<max_size>]
//	    stale_on_error         <duration>
//	    stale_while_revalidate <duration>
//	    origin_timeout         <duration>
//	    heuristic_max          <duration>
//	    lock_timeout           <duration>
//	    background_timeout     <duration>
//	    refresh_ahead          <fraction> [<hot_hits>] | off
//	    warm                   <url...>
//	    purge_allow            <cidr...>
//	    bypass_cookie          <name...>
//	}
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		h.Name = d.Val()
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	var sub string // the subdirective being parsed, for errors
	size := func() (int64, error) {
		if !d.NextArg() {
			return 0, d.ArgErr()
		}
		n, err := humanize.ParseBytes(d.Val())
		if err != nil || n == 0 || n > 1<<50 {
			return 0, d.Errf("%s: invalid size %q", sub, d.Val())
		}
		return int64(n), nil
	}
	dur := func(dst *caddy.Duration) error {
		if !d.NextArg() {
			return d.ArgErr()
		}
		v, err := caddy.ParseDuration(d.Val())
		if err != nil || v < 0 {
			return d.Errf("%s: invalid duration %q", sub, d.Val())
		}
		*dst = caddy.Duration(v)
		if d.NextArg() {
			return d.ArgErr()
		}
		return nil
	}
	for d.NextBlock(0) {
		var err error
		sub = d.Val()
		switch sub {
		case "site":
			if !d.AllArgs(&h.Site) {
				return d.ArgErr()
			}
		case "max_size":
			h.MaxSize, err = size()
		case "max_entry_size":
			h.MaxEntrySize, err = size()
		case "policy":
			if !d.AllArgs(&h.Policy) {
				return d.ArgErr()
			}
			if _, perr := newPolicy(h.Policy, 1, func(*entry) {}, nil); perr != nil {
				return d.Err(perr.Error())
			}
		case "disk":
			if !d.NextArg() {
				return d.ArgErr()
			}
			h.DiskDir = d.Val()
			if d.NextArg() {
				d.Prev()
				h.DiskMaxSize, err = size()
			}
		case "stale_on_error":
			err = dur(&h.StaleOnError)
		case "stale_while_revalidate":
			err = dur(&h.StaleWhileRevalidate)
		case "origin_timeout":
			err = dur(&h.OriginTimeout)
		case "heuristic_max":
			err = dur(&h.HeuristicMax)
		case "lock_timeout":
			err = dur(&h.LockTimeout)
		case "background_timeout":
			err = dur(&h.BackgroundTimeout)
		case "refresh_ahead":
			if !d.NextArg() {
				return d.ArgErr()
			}
			if d.Val() == "off" {
				h.RefreshAhead = -1
				break
			}
			f, perr := strconv.ParseFloat(d.Val(), 64)
			if perr != nil || f <= 0 || f >= 1 {
				return d.Errf("refresh_ahead: %q is not a fraction between 0 and 1", d.Val())
			}
			h.RefreshAhead = f
			if d.NextArg() {
				n, perr := strconv.ParseInt(d.Val(), 10, 64)
				if perr != nil || n < 1 {
					return d.Errf("refresh_ahead: hot_hits %q is not a positive integer", d.Val())
				}
				h.HotHits = n
			}
		case "warm":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			for _, a := range args {
				if _, _, perr := selfrequest.SplitURL(a); perr != nil {
					return d.Errf("warm: %v", perr)
				}
			}
			h.Warm = append(h.Warm, args...)
		case "purge_allow":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			h.PurgeAllow = append(h.PurgeAllow, args...)
		case "bypass_cookie":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			h.BypassCookies = append(h.BypassCookies, args...)
		default:
			return d.Errf("edge_cache: unknown subdirective %q", d.Val())
		}
		if err != nil {
			return err
		}
	}
	return nil
}

var _ caddyfile.Unmarshaler = (*Handler)(nil)
