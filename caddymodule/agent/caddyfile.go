package agent

import (
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	httpcaddyfile.RegisterGlobalOption("conductor_agent", parseAgent)
	httpcaddyfile.RegisterGlobalOption("conductor_manager", parseManager)
	httpcaddyfile.RegisterHandlerDirective("conductor_meter", func(httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
		return &Meter{}, nil
	})
	httpcaddyfile.RegisterHandlerDirective("conductor_pull", func(httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
		return &Pull{}, nil
	})
}

// parseAgent:
//
//	conductor_agent {
//	    manager     <url...>         several: the managers sharing etcd
//	    join_token  <token>         once, to enrol (an admin mints it)
//	    identity_dir <dir>          where the node certificate is kept
//	    fleet       <name>
//	    node        <id>
//	    role        frontend|backend
//	    region      <region>
//	    addr        <client-facing address>
//	    probe       <this node's HTTP address>
//	    upstream    <host:port>     a back-end's TMP address, for front-ends
//	    peer_listen <host:port>     serves bundles to peers (mutual TLS)
//	    bundle_dir  <dir>           the node's bundle store
//	    signing_key <hex Ed25519 public key>   every bundle must be signed by it
//	    insecure_unsigned           accept unsigned bundles (no signing_key)
//	    ca_file     <PEM: the CA that signed the manager's certificate>
//	    interval    <duration>
//	}
func parseAgent(d *caddyfile.Dispenser, _ any) (any, error) {
	a := new(App)
	d.Next()
	for d.NextBlock(0) {
		sub := d.Val()
		if sub == "manager" {
			urls := d.RemainingArgs()
			if len(urls) == 0 {
				return nil, d.ArgErr()
			}
			a.Manager, a.Managers = urls[0], urls[1:]
			continue
		}
		if sub == "insecure_unsigned" {
			if d.NextArg() {
				return nil, d.ArgErr()
			}
			a.InsecureUnsigned = true
			continue
		}
		var v string
		if !d.Args(&v) {
			return nil, d.ArgErr()
		}
		switch sub {
		case "token":
			return nil, d.Errf("conductor_agent: token was replaced: a node enrols once with join_token <token> (an admin mints one for it: POST /v1/join-tokens), then proves who it is with its certificate; see the README, \"Security model\"")
		case "join_token":
			a.JoinToken = v
		case "identity_dir":
			a.IdentityDir = v
		case "fleet":
			a.Fleet = v
		case "node":
			a.Node = v
		case "role":
			a.Role = v
		case "region":
			a.Region = v
		case "addr":
			a.Addr = v
		case "admin", "server":
			return nil, d.Errf("conductor_agent: %s is gone: bundles are served by the bundle handler, and installing one changes no Caddy config (see the README, \"Shifting\")", sub)
		case "probe":
			a.Probe = v
		case "upstream":
			a.Upstream = v
		case "peer_listen":
			a.PeerListen = v
		case "bundle_dir":
			a.BundleDir = v
		case "signing_key":
			a.SigningKey = v
		case "ca_file":
			a.CAFile = v
		case "interval":
			dur, err := caddy.ParseDuration(v)
			if err != nil || dur <= 0 {
				return nil, d.Errf("conductor_agent: interval %q: want a positive duration", v)
			}
			a.Interval = caddy.Duration(dur)
		default:
			return nil, d.Errf("conductor_agent: unknown option %q", sub)
		}
	}
	return httpcaddyfile.App{Name: "conductor_agent", Value: caddyconfig.JSON(a, nil)}, nil
}

// parseManager:
//
//	conductor_manager {
//	    listen      <address>
//	    operator    <name> read|admin <key | sha256:hex>   one per operator
//	    fleet       <name>
//	    cert_lifetime <duration>    of node certificates
//	    server_names <host...>      in the manager's own certificate
//	    signing_key <hex Ed25519 public key>
//	    state_dir   <dir>
//	    target_rps  <requests/s per front-end>
//	    max_load    <load at which a front-end counts as overloaded>
//	    hysteresis  <duration>
//	    settle      <duration>
//	    interval    <duration>
//	    tls         <cert_file> <key_file>
//	    etcd        <endpoint...>
//	    etcd_prefix <prefix>
//	}
func parseManager(d *caddyfile.Dispenser, _ any) (any, error) {
	m := new(ManagerApp)
	d.Next()
	for d.NextBlock(0) {
		sub := d.Val()
		if sub == "etcd" {
			m.Etcd = d.RemainingArgs()
			if len(m.Etcd) == 0 {
				return nil, d.ArgErr()
			}
			continue
		}
		if sub == "operator" {
			args := d.RemainingArgs()
			if len(args) != 3 {
				return nil, d.Errf("conductor_manager: operator <name> read|admin <key>")
			}
			m.Operators = append(m.Operators, OperatorKey{Name: args[0], Role: args[1], Key: args[2]})
			continue
		}
		if sub == "server_names" {
			m.ServerNames = d.RemainingArgs()
			if len(m.ServerNames) == 0 {
				return nil, d.ArgErr()
			}
			continue
		}
		if sub == "etcd_tls" {
			// etcd_tls <ca_file> [<cert_file> <key_file>]
			args := d.RemainingArgs()
			if len(args) != 1 && len(args) != 3 {
				return nil, d.Errf("conductor_manager: etcd_tls <ca_file> [<cert_file> <key_file>]")
			}
			m.EtcdCA = args[0]
			if len(args) == 3 {
				m.EtcdCert, m.EtcdKey = args[1], args[2]
			}
			continue
		}
		var v string
		if !d.Args(&v) {
			return nil, d.ArgErr()
		}
		dur := func(dst *caddy.Duration) error {
			x, err := caddy.ParseDuration(v)
			if err != nil || x <= 0 {
				return d.Errf("conductor_manager: %s %q: want a positive duration", sub, v)
			}
			*dst = caddy.Duration(x)
			return nil
		}
		var err error
		switch sub {
		case "listen":
			m.Listen = v
		case "token":
			return nil, d.Errf("conductor_manager: token was replaced: operators have their own keys (operator <name> read|admin <key>), and nodes enrol with join tokens; see the README, \"Security model\"")
		case "fleet":
			m.Fleet = v
		case "cert_lifetime":
			err = dur(&m.CertLifetime)
		case "signing_key":
			m.SigningKey = v
		case "state_dir":
			m.StateDir = v
		case "etcd_prefix":
			m.EtcdPrefix = v
		case "tls":
			m.TLSCert = v
			if !d.Args(&m.TLSKey) {
				return nil, d.Errf("conductor_manager: tls <cert_file> <key_file>")
			}
		case "target_rps":
			f, perr := strconv.ParseFloat(v, 64)
			if perr != nil || f <= 0 {
				return nil, d.Errf("conductor_manager: target_rps %q: want a positive number", v)
			}
			m.TargetRPS = f
		case "max_load":
			f, perr := strconv.ParseFloat(v, 64)
			if perr != nil || f <= 0 {
				return nil, d.Errf("conductor_manager: max_load %q: want a positive number", v)
			}
			m.MaxLoad = f
		case "hysteresis":
			err = dur(&m.Hysteresis)
		case "settle":
			err = dur(&m.Settle)
		case "interval":
			err = dur(&m.Interval)
		default:
			return nil, d.Errf("conductor_manager: unknown option %q", sub)
		}
		if err != nil {
			return nil, err
		}
	}
	return httpcaddyfile.App{Name: "conductor_manager", Value: caddyconfig.JSON(m, nil)}, nil
}
