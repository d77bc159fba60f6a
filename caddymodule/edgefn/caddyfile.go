package edgefn

import (
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("edge_function", func(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
		f := new(Handler)
		return f, f.UnmarshalCaddyfile(h.Dispenser)
	})
	// It answers, like reverse_proxy: a function on a path goes before the
	// site's proxy.
	httpcaddyfile.RegisterDirectiveOrder("edge_function", httpcaddyfile.Before, "reverse_proxy")
}

// UnmarshalCaddyfile reads:
//
//	edge_function [<matcher>] [<module.wasm>] {
//	    module           <module.wasm>
//	    data             <dir>
//	    env              <key> <value>
//	    max_memory       <size>       # default 128MiB
//	    timeout          <duration>   # default 2s
//	    max_request_body <size>       # default 1MiB
//	    max_response     <size>       # default 8MiB
//	    instances        <n>          # default 8
//	    fetch_allow      <host...>
//	    name             <label>
//	}
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if d.NextArg() {
		h.Module = d.Val()
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		sub := d.Val()
		args := d.RemainingArgs()
		want := 1
		switch sub {
		case "env":
			want = 2
		case "fetch_allow":
			want = len(args)
		}
		if len(args) != want || len(args) == 0 {
			return d.ArgErr()
		}
		var err error
		size := func(dst *int64) {
			var n uint64
			n, err = humanize.ParseBytes(args[0])
			*dst = int64(n)
		}
		switch sub {
		case "module":
			h.Module = args[0]
		case "data":
			h.Data = args[0]
		case "env":
			if h.Env == nil {
				h.Env = map[string]string{}
			}
			h.Env[args[0]] = args[1]
		case "max_memory":
			size(&h.MaxMemory)
		case "max_request_body":
			size(&h.MaxRequestBody)
		case "max_response":
			size(&h.MaxResponse)
		case "timeout":
			var t time.Duration
			t, err = caddy.ParseDuration(args[0])
			h.Timeout = caddy.Duration(t)
		case "instances":
			h.Instances, err = strconv.Atoi(args[0])
		case "fetch_allow":
			h.FetchAllow = append(h.FetchAllow, args...)
		case "name":
			h.Name = args[0]
		default:
			return d.Errf("edge_function: unknown subdirective %q (want module, data, env, max_memory, timeout, max_request_body, max_response, instances, fetch_allow or name)", sub)
		}
		if err != nil {
			return d.Errf("edge_function: %s: invalid value %q", sub, args[len(args)-1])
		}
	}
	return nil
}

var _ caddyfile.Unmarshaler = (*Handler)(nil)
