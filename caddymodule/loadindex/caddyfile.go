package loadindex

import (
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/conductor-edge/conductor/caddymodule/internal/fleetopt"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("load_index", func(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
		p := new(Publisher)
		return p, p.UnmarshalCaddyfile(h.Dispenser)
	})
	httpcaddyfile.RegisterDirectiveOrder("load_index", httpcaddyfile.Before, "reverse_proxy")
	httpcaddyfile.RegisterHandlerDirective("load_gate", func(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
		g := new(Gate)
		return g, g.UnmarshalCaddyfile(h.Dispenser)
	})
	// Its place in the order is set by caddymodule, beside the other
	// admission handlers' (after waiting_room).
}

// UnmarshalCaddyfile:
//
//	load_index {
//	    capacity       <requests/s>
//	    max_in_flight  <n>
//	    target_latency <duration>
//	}
func (p *Publisher) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		sub := d.Val()
		if !d.NextArg() {
			return d.ArgErr()
		}
		v := d.Val()
		switch sub {
		case "capacity":
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || f <= 0 {
				return d.Errf("load_index: capacity %q: want requests per second above 0", v)
			}
			p.Capacity = f
		case "max_in_flight":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n <= 0 {
				return d.Errf("load_index: max_in_flight %q: want a positive integer", v)
			}
			p.MaxInFlight = n
		case "target_latency":
			dur, err := caddy.ParseDuration(v)
			if err != nil || dur <= 0 {
				return d.Errf("load_index: target_latency %q: want a positive duration", v)
			}
			p.TargetLatency = caddy.Duration(dur)
		default:
			return d.Errf("load_index: unknown option %q (want capacity, max_in_flight or target_latency)", sub)
		}
		if d.NextArg() {
			return d.ArgErr()
		}
	}
	return nil
}

// UnmarshalCaddyfile:
//
//	load_gate [<name>] {
//	    threshold      <index>          default 0.9
//	    admit_priority <0-4>            default 1
//	    poll           <url> [<interval>]
//	    retry          <duration>       default 5s
//	    site_name      <text>
//	    wait_page      <template file>
//	}
func (g *Gate) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if d.NextArg() {
		g.Name = d.Val()
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		sub := d.Val()
		args := d.RemainingArgs()
		if sub == "fleet" {
			n, err := fleetopt.Parse(args)
			if err != nil {
				return d.Errf("load_gate: %v", err)
			}
			g.Fleet, g.FleetFrontends = true, n
			continue
		}
		if len(args) == 0 {
			return d.ArgErr()
		}
		switch sub {
		case "threshold":
			f, err := strconv.ParseFloat(args[0], 64)
			if err != nil || f <= 0 {
				return d.Errf("load_gate: threshold %q: want an index above 0", args[0])
			}
			g.Threshold = f
		case "admit_priority":
			n, err := strconv.Atoi(args[0])
			if err != nil || n < -1 || n > 4 {
				return d.Errf("load_gate: admit_priority %q: want -1 (none) to 4", args[0])
			}
			g.AdmitPriority = &n
		case "poll":
			g.Poll = args[0]
			if len(args) > 1 {
				dur, err := caddy.ParseDuration(args[1])
				if err != nil || dur <= 0 {
					return d.Errf("load_gate: poll interval %q: want a positive duration", args[1])
				}
				g.PollInterval = caddy.Duration(dur)
			}
		case "retry":
			dur, err := caddy.ParseDuration(args[0])
			if err != nil || dur < time.Second {
				return d.Errf("load_gate: retry %q: want a duration of at least 1s", args[0])
			}
			g.Retry = caddy.Duration(dur)
		case "site_name":
			g.SiteName = args[0]
		case "wait_page":
			g.WaitPage = args[0]
		default:
			return d.Errf("load_gate: unknown option %q (want threshold, admit_priority, poll, retry, fleet, site_name or wait_page)", sub)
		}
	}
	return nil
}
