package adapt

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"
)

func init() {
	// adapt's place (before esi and edge_cache) is set with the admission
	// handlers', in caddymodule. adapt_images goes after edge_cache, which
	// then stores its variants, and after encode, which leaves images alone.
	httpcaddyfile.RegisterHandlerDirective("adapt", func(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
		a := new(Handler)
		return a, a.UnmarshalCaddyfile(h.Dispenser)
	})
	httpcaddyfile.RegisterHandlerDirective("adapt_images", func(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
		im := new(Images)
		return im, im.UnmarshalCaddyfile(h.Dispenser)
	})
	httpcaddyfile.RegisterDirectiveOrder("adapt_images", httpcaddyfile.After, "encode")
}

// UnmarshalCaddyfile reads:
//
//	adapt {
//	    lite_rtt      <duration>   # default 120ms
//	    lite_downlink <rate>       # bits/s: 2Mbit, 500kbit; default 2Mbit
//	    text_rtt      <duration>   # default 1s
//	    text_downlink <rate>       # default 200kbit
//	    site          <label>
//	}
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
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
		var err error
		switch sub {
		case "lite_rtt", "text_rtt":
			var t caddy.Duration
			var dur = &h.LiteRTT
			if sub == "text_rtt" {
				dur = &h.TextRTT
			}
			t, err = parseDuration(v)
			*dur = time.Duration(t)
		case "lite_downlink":
			h.LiteDownlink, err = parseRate(v)
		case "text_downlink":
			h.TextDownlink, err = parseRate(v)
		case "site":
			h.Site = v
		default:
			return d.Errf("adapt: unknown subdirective %q (want lite_rtt, lite_downlink, text_rtt, text_downlink or site)", sub)
		}
		if err != nil {
			return d.Errf("adapt: %s: invalid value %q", sub, v)
		}
		if d.NextArg() {
			return d.ArgErr()
		}
	}
	return nil
}

// UnmarshalCaddyfile reads:
//
//	adapt_images {
//	    max_width  <class> <pixels>   # per class; 0 keeps the width
//	    quality    <class> <1-100>
//	    max_bytes  <size>
//	    max_pixels <n>
//	    workers    <n>
//	    wait       <duration>
//	    convert_full
//	    site       <label>
//	}
func (im *Images) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		sub := d.Val()
		args := d.RemainingArgs()
		if sub == "convert_full" {
			if len(args) != 0 {
				return d.ArgErr()
			}
			im.ConvertFull = true
			continue
		}
		perClass := sub == "max_width" || sub == "quality"
		if (perClass && len(args) != 2) || (!perClass && len(args) != 1) {
			return d.ArgErr()
		}
		var err error
		switch sub {
		case "max_width", "quality":
			c := Class(args[0])
			if c != Full && c != Lite && c != Text {
				return d.Errf("adapt_images: %s: class %q: want full, lite or text", sub, args[0])
			}
			m := &im.MaxWidth
			if sub == "quality" {
				m = &im.Quality
			}
			if *m == nil {
				*m = map[Class]int{}
			}
			var n int
			n, err = strconv.Atoi(args[1])
			(*m)[c] = n
		case "max_bytes":
			var n uint64
			n, err = humanize.ParseBytes(args[0])
			im.MaxBytes = int64(n)
		case "max_pixels":
			im.MaxPixels, err = strconv.Atoi(args[0])
		case "workers":
			im.Workers, err = strconv.Atoi(args[0])
		case "wait":
			im.Wait, err = parseDuration(args[0])
		case "site":
			im.Site = args[0]
		default:
			return d.Errf("adapt_images: unknown subdirective %q (want max_width, quality, max_bytes, max_pixels, workers, wait, convert_full or site)", sub)
		}
		if err != nil {
			return d.Errf("adapt_images: %s: invalid value %q", sub, args[len(args)-1])
		}
	}
	return nil
}

func parseDuration(s string) (caddy.Duration, error) {
	d, err := caddy.ParseDuration(s)
	return caddy.Duration(d), err
}

// parseRate reads a rate in bits per second: "2Mbit", "500kbit", "64000".
func parseRate(s string) (float64, error) {
	mult := 1.0
	for _, u := range []struct {
		suffix string
		m      float64
	}{{"gbit", 1e9}, {"mbit", 1e6}, {"kbit", 1e3}, {"bit", 1}} {
		if n := len(s) - len(u.suffix); n > 0 && strings.EqualFold(s[n:], u.suffix) {
			s, mult = s[:n], u.m
			break
		}
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("rate %q", s)
	}
	return v * mult, nil
}

var (
	_ caddyfile.Unmarshaler = (*Handler)(nil)
	_ caddyfile.Unmarshaler = (*Images)(nil)
)
