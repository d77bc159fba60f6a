// Package corednsplugin is the CoreDNS plugin `conductor`: it answers for a
// site with the best front-end for the client — healthy, not overloaded,
// close to the client's subnet — and falls back to the origin when no
// front-end can serve. See README.md.
package corednsplugin

import (
	"crypto/x509"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/pkg/edns"
	"github.com/miekg/dns"

	"github.com/conductor-edge/conductor/internal/enrol"
	"github.com/conductor-edge/conductor/internal/nodeid"
)

const pluginName = "conductor"

func init() {
	plugin.Register(pluginName, setup)
	// Echo EDNS Client Subnet in replies (RFC 7871 §7.2.2).
	edns.SetSupportedOption(dns.EDNS0SUBNET)
}

func setup(c *caddy.Controller) error {
	cfg, err := parse(c)
	if err != nil {
		return plugin.Error(pluginName, err)
	}
	h := newHandler(cfg)
	c.OnStartup(h.start)
	c.OnShutdown(func() error {
		h.stop()
		return nil
	})
	dnsserver.GetConfig(c).AddPlugin(func(next plugin.Handler) plugin.Handler {
		h.Next = next
		return h
	})
	return nil
}

// config is one `conductor` stanza.
type config struct {
	zones        []string
	frontends    []*frontend
	regions      []regionPrefix
	ttl          uint32
	answers      int
	sticky       bool
	fallback     []net.IP
	interval     time.Duration
	timeout      time.Duration
	up, down     int
	maxLoad      float64
	startHealthy bool
	// manager, when set, is the shifting manager whose view lists the
	// front-ends of each site (those holding its bundle, with their health,
	// load and region). The plugin is a node of the fleet in the role
	// "dns": it enrols once with managerJoin, keeps its certificate in
	// managerIdentity, and presents it to the manager.
	managers        []string
	managerCA       *x509.CertPool // trusted for the manager's HTTPS, besides the system roots
	managerNode     string
	managerJoin     string
	managerIdentity string
	// managerMaxAge is how long a manager view is answered from (default
	// 75 s: three of the manager's 25 s long-polls).
	managerMaxAge time.Duration
}

// parse reads:
//
//	conductor [ZONES...] {
//		frontend NAME ADDRESS... [region REGION] [weight N] [health URL]
//		region CIDR REGION
//		fallback ADDRESS...
//		ttl SECONDS
//		answers N
//		sticky
//		health_check INTERVAL [timeout DURATION] [up N] [down N]
//		max_load LOAD
//		manager URL...
//		manager_ca FILE
//		manager_node NAME
//		manager_join TOKEN
//		manager_identity_dir DIR
//		manager_max_age DURATION
//	}
func parse(c *caddy.Controller) (*config, error) {
	cfg := &config{ttl: 30, answers: 1, interval: 5 * time.Second, timeout: 2 * time.Second, up: 2, down: 3, maxLoad: 0.9, startHealthy: true, managerMaxAge: 75 * time.Second}
	n := 0
	for c.Next() {
		if n > 0 {
			return nil, c.Err("only one conductor block per server block")
		}
		n++
		cfg.zones = plugin.OriginsFromArgsOrServerBlock(c.RemainingArgs(), c.ServerBlockKeys)
		for c.NextBlock() {
			if err := parseOption(c, cfg); err != nil {
				return nil, err
			}
		}
	}
	if len(cfg.frontends) == 0 && len(cfg.fallback) == 0 && len(cfg.managers) == 0 {
		return nil, c.Err("no frontend, no manager and no fallback: nothing to answer with")
	}
	if len(cfg.managers) > 0 {
		if cfg.managerNode == "" {
			cfg.managerNode = defaultNodeName()
		}
		if cfg.managerIdentity == "" {
			cfg.managerIdentity = defaultIdentityDir(cfg.managerNode)
		}
	}
	return cfg, nil
}

func parseOption(c *caddy.Controller, cfg *config) error {
	opt := c.Val()
	args := c.RemainingArgs()
	switch opt {
	case "frontend":
		fe, err := parseFrontend(args)
		if err != nil {
			return c.Errf("frontend: %v", err)
		}
		for _, o := range cfg.frontends {
			if o.name == fe.name {
				return c.Errf("frontend %q defined twice", fe.name)
			}
		}
		cfg.frontends = append(cfg.frontends, fe)
	case "region":
		if len(args) != 2 {
			return c.Errf("region takes CIDR REGION, got %d arguments", len(args))
		}
		p, err := netip.ParsePrefix(args[0])
		if err != nil {
			return c.Errf("region: %v", err)
		}
		cfg.regions = append(cfg.regions, regionPrefix{p.Masked(), args[1]})
	case "manager":
		// manager URL...: several URLs for managers sharing etcd; the
		// plugin follows whichever leads.
		cfg.managers = nil
		for _, a := range args {
			if !strings.Contains(a, "://") {
				return c.Errf("manager: %q is not a URL: the manager token was replaced; the plugin enrols once with manager_join TOKEN (an admin mints one with role dns), then presents its certificate", a)
			}
			if err := enrol.CheckURL(a); err != nil {
				return c.Errf("manager: %v", err)
			}
			cfg.managers = append(cfg.managers, strings.TrimSuffix(a, "/"))
		}
		if len(cfg.managers) == 0 {
			return c.Errf("manager: want URL...")
		}
	case "manager_node", "manager_join", "manager_identity_dir":
		if len(args) != 1 || args[0] == "" {
			return c.ArgErr()
		}
		switch opt {
		case "manager_node":
			if !nodeid.Valid(args[0]) {
				return c.Errf("manager_node %q: 1-64 characters of [A-Za-z0-9._-]", args[0])
			}
			cfg.managerNode = args[0]
		case "manager_join":
			cfg.managerJoin = args[0]
		default:
			cfg.managerIdentity = args[0]
		}
	case "manager_max_age":
		if len(args) != 1 {
			return c.ArgErr()
		}
		d, err := time.ParseDuration(args[0])
		if err != nil || d <= 0 {
			return c.Errf("manager_max_age %q: want a positive duration", args[0])
		}
		cfg.managerMaxAge = d
	case "manager_ca":
		if len(args) != 1 {
			return c.ArgErr()
		}
		pool, err := enrol.LoadRoots(args[0])
		if err != nil {
			return c.Errf("manager_ca: %v", err)
		}
		cfg.managerCA = pool
	case "fallback":
		if len(args) == 0 {
			return c.ArgErr()
		}
		for _, a := range args {
			ip := net.ParseIP(a)
			if ip == nil {
				return c.Errf("fallback: %q is not an IP address", a)
			}
			cfg.fallback = append(cfg.fallback, ip)
		}
	case "ttl":
		v, err := oneUint(args, 0, 86400)
		if err != nil {
			return c.Errf("ttl: %v", err)
		}
		cfg.ttl = uint32(v)
	case "answers":
		v, err := oneUint(args, 1, 16)
		if err != nil {
			return c.Errf("answers: %v", err)
		}
		cfg.answers = int(v)
	case "sticky":
		if len(args) != 0 {
			return c.ArgErr()
		}
		cfg.sticky = true
	case "max_load":
		if len(args) != 1 {
			return c.ArgErr()
		}
		v, err := strconv.ParseFloat(args[0], 64)
		if err != nil || v <= 0 {
			return c.Errf("max_load %q: want a positive number (1.0 = fully loaded)", args[0])
		}
		cfg.maxLoad = v
	case "health_check":
		if len(args) == 0 || len(args)%2 != 1 {
			return c.Errf("health_check takes INTERVAL [timeout DURATION] [up N] [down N]")
		}
		d, err := time.ParseDuration(args[0])
		if err != nil || d <= 0 {
			return c.Errf("health_check interval %q: want a positive duration", args[0])
		}
		cfg.interval = d
		for i := 1; i < len(args); i += 2 {
			k, v := args[i], args[i+1]
			switch k {
			case "timeout":
				d, err := time.ParseDuration(v)
				if err != nil || d <= 0 {
					return c.Errf("health_check timeout %q: want a positive duration", v)
				}
				cfg.timeout = d
			case "up", "down":
				n, err := strconv.Atoi(v)
				if err != nil || n < 1 || n > 100 {
					return c.Errf("health_check %s %q: want 1..100", k, v)
				}
				if k == "up" {
					cfg.up = n
				} else {
					cfg.down = n
				}
			default:
				return c.Errf("health_check: unknown option %q (want timeout, up or down)", k)
			}
		}
	default:
		return c.Errf("unknown option %q (want frontend, region, fallback, ttl, answers, sticky, max_load or health_check)", opt)
	}
	return nil
}

func oneUint(args []string, lo, hi uint64) (uint64, error) {
	if len(args) != 1 {
		return 0, fmt.Errorf("want one number")
	}
	v, err := strconv.ParseUint(args[0], 10, 32)
	if err != nil || v < lo || v > hi {
		return 0, fmt.Errorf("%q: want %d..%d", args[0], lo, hi)
	}
	return v, nil
}

// parseFrontend reads NAME ADDRESS... [region R] [weight N] [health URL].
func parseFrontend(args []string) (*frontend, error) {
	if len(args) < 2 {
		return nil, fmt.Errorf("want NAME ADDRESS... [region REGION] [weight N] [health URL]")
	}
	fe := &frontend{name: args[0], weight: 1}
	i := 1
	for ; i < len(args); i++ {
		ip := net.ParseIP(args[i])
		if ip == nil {
			break
		}
		if ip4 := ip.To4(); ip4 != nil {
			fe.v4 = append(fe.v4, ip4)
		} else {
			fe.v6 = append(fe.v6, ip)
		}
	}
	if len(fe.v4)+len(fe.v6) == 0 {
		return nil, fmt.Errorf("%s: %q is not an IP address", fe.name, args[1])
	}
	for ; i < len(args); i += 2 {
		if i+1 >= len(args) {
			return nil, fmt.Errorf("%s: %q needs a value", fe.name, args[i])
		}
		k, v := args[i], args[i+1]
		switch k {
		case "region":
			fe.region = v
		case "weight":
			w, err := strconv.Atoi(v)
			if err != nil || w < 1 || w > 1000 {
				return nil, fmt.Errorf("%s: weight %q: want 1..1000", fe.name, v)
			}
			fe.weight = w
		case "health":
			if !strings.HasPrefix(v, "http://") && !strings.HasPrefix(v, "https://") {
				return nil, fmt.Errorf("%s: health %q: want an http(s) URL", fe.name, v)
			}
			fe.healthURL = v
		default:
			return nil, fmt.Errorf("%s: unknown option %q (want region, weight or health)", fe.name, k)
		}
	}
	return fe, nil
}

// defaultNodeName is the plugin's node name when manager_node is not set:
// the host's name.
func defaultNodeName() string {
	h, err := os.Hostname()
	if err != nil || !nodeid.Valid(h) {
		return "coredns"
	}
	return h
}

// defaultIdentityDir keeps the plugin's certificate under the user's data
// directory ($XDG_DATA_HOME, else ~/.local/share), like Caddy keeps its own.
func defaultIdentityDir(node string) string {
	base := os.Getenv("XDG_DATA_HOME")
	if base == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			home = os.TempDir()
		}
		base = filepath.Join(home, ".local", "share")
	}
	return filepath.Join(base, "coredns", "conductor", node)
}
