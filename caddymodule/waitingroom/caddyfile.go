package waitingroom

import (
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/conductor-edge/conductor/caddymodule/internal/fleetopt"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("waiting_room", func(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
		w := new(Handler)
		return w, w.UnmarshalCaddyfile(h.Dispenser)
	})
}

// UnmarshalCaddyfile:
//
//	waiting_room [<matcher>] [<name>] {
//	    total_active_users   <n>
//	    new_users_per_minute <n>
//	    session_duration     <duration>
//	    queueing             fifo|random
//	    refresh              <duration>
//	    bypass_priority      <-1..4>
//	    load_index           <name> [<threshold>]
//	    secret               <at least 16 characters>
//	    fleet                [<front-ends without a lease>]
//	    site_name            <text>
//	    queue_page           <template file>
//	}
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if d.NextArg() {
		h.Name = d.Val()
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
				return d.Errf("waiting_room: %v", err)
			}
			h.Fleet, h.FleetFrontends = true, n
			continue
		}
		if len(args) == 0 {
			return d.ArgErr()
		}
		positive := func() (int, error) {
			n, err := strconv.Atoi(args[0])
			if err != nil || n < 1 {
				return 0, d.Errf("waiting_room: %s %q: want a positive integer", sub, args[0])
			}
			return n, nil
		}
		duration := func() (caddy.Duration, error) {
			v, err := caddy.ParseDuration(args[0])
			if err != nil || v <= 0 {
				return 0, d.Errf("waiting_room: %s %q: want a positive duration", sub, args[0])
			}
			return caddy.Duration(v), nil
		}
		var err error
		switch sub {
		case "total_active_users":
			h.TotalActiveUsers, err = positive()
		case "new_users_per_minute":
			h.NewUsersPerMinute, err = positive()
		case "max_waiting":
			h.MaxWaiting, err = positive()
		case "session_duration":
			h.SessionDuration, err = duration()
		case "refresh":
			h.Refresh, err = duration()
		case "queueing":
			if args[0] != "fifo" && args[0] != "random" {
				return d.Errf("waiting_room: queueing %q: want fifo or random", args[0])
			}
			h.Queueing = args[0]
		case "bypass_priority":
			n, perr := strconv.Atoi(args[0])
			if perr != nil || n < -1 || n > 4 {
				return d.Errf("waiting_room: bypass_priority %q: want -1 (none) to 4", args[0])
			}
			h.BypassPriority = &n
		case "load_index":
			h.LoadIndex = args[0]
			if len(args) > 1 {
				f, perr := strconv.ParseFloat(args[1], 64)
				if perr != nil || f <= 0 {
					return d.Errf("waiting_room: load_index threshold %q: want an index above 0", args[1])
				}
				h.LoadThreshold = f
			}
		case "secret":
			if len(args[0]) < 16 {
				return d.Errf("waiting_room: secret must be at least 16 characters")
			}
			h.Secret = args[0]
		case "site_name":
			h.SiteName = args[0]
		case "queue_page":
			h.QueuePage = args[0]
		default:
			return d.Errf("waiting_room: unknown option %q", sub)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
