// Package agent is the node side of the shifting manager: the Caddy app
// `conductor_agent` reports this node's load, demand, links and inventory
// to the manager, and installs the site bundles the manager assigns to it
// as that site's routes, through Caddy's admin API.
package agent

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/conductor-edge/conductor/caddymodule/bundle"
	"github.com/conductor-edge/conductor/internal/enrol"
	"github.com/conductor-edge/conductor/internal/nodeid"
	"github.com/conductor-edge/conductor/shifting"
)

func init() {
	caddy.RegisterModule(new(App))
}

// App is `conductor_agent`.
type App struct {
	// Manager is the manager's URL; Managers lists more, for several
	// managers sharing etcd: the agent uses whichever leads.
	Manager  string   `json:"manager"`
	Managers []string `json:"managers,omitempty"`
	// JoinToken enrols the node once (an admin mints it for this node's
	// name, role and addresses). The certificate it gets is kept in
	// IdentityDir (default: Caddy's data directory,
	// conductor/identity/<node>) and renewed with itself; the token is not
	// sent again.
	JoinToken   string `json:"join_token,omitempty"`
	IdentityDir string `json:"identity_dir,omitempty"`
	// Fleet names the fleet (default "conductor").
	Fleet  string `json:"fleet,omitempty"`
	Node   string `json:"node"`
	Role   string `json:"role,omitempty"` // frontend (default) or backend
	Region string `json:"region,omitempty"`
	// Addr is where clients reach this node (DNS answers it).
	Addr string `json:"addr,omitempty"`
	// Probe is this node's HTTP address, where the manager's status page
	// and checks reach it.
	Probe string `json:"probe,omitempty"`
	// Upstream is, on a back-end, where front-ends reach it (host:port of
	// its TMP listener): what they dial when the manager assigns it to a
	// site.
	Upstream string `json:"upstream,omitempty"`
	// PeerListen is where this front-end serves its bundles to its peers,
	// over mutual TLS (host:port; port 0 picks one). Its host must be one
	// the node's join token pinned. Empty: peers fetch from the manager.
	PeerListen string `json:"peer_listen,omitempty"`
	// BundleDir is the node's bundle store (what the `bundle` handler
	// serves, kept across restarts). Default: Caddy's data directory,
	// conductor/bundles.
	BundleDir string `json:"bundle_dir,omitempty"`
	// SigningKey (hex Ed25519 public key) must have signed every bundle.
	SigningKey string `json:"signing_key,omitempty"`
	// InsecureUnsigned accepts unsigned bundles when no SigningKey is set.
	// Without either, the node refuses every bundle.
	InsecureUnsigned bool `json:"insecure_unsigned,omitempty"`
	// CAFile (PEM) is trusted for the manager's HTTPS certificate, besides
	// the system roots.
	CAFile   string         `json:"ca_file,omitempty"`
	Interval caddy.Duration `json:"interval,omitempty"`

	roots  *x509.CertPool
	logger *zap.Logger
	ctx    caddy.Context
	links  linkSource

	// store is the node's bundle store: the running config's, taken over
	// at provisioning, so that the bundle handlers of the old config and
	// of the new one serve the same bundles throughout a reload.
	store *bundle.Store
	w     atomic.Pointer[worker] // the node's worker while this config runs it
	cfg   workerConfig           // what this config tells the worker (set in Start)
	prev  *App                   // the running config's agent, whose worker this one took
}

// CaddyModule returns the Caddy module information.
func (*App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "conductor_agent", New: func() caddy.Module { return new(App) }}
}

// Provision checks the configuration.
func (a *App) Provision(ctx caddy.Context) error {
	a.logger = ctx.Logger()
	a.ctx = ctx
	if app, err := ctx.AppIfConfigured("conductor"); err == nil {
		a.links, _ = app.(linkSource)
	}
	if a.Manager == "" || a.Node == "" {
		return fmt.Errorf("conductor_agent: manager and node are required")
	}
	if !nodeid.Valid(a.Node) {
		return fmt.Errorf("conductor_agent: node %q: 1-64 characters of [A-Za-z0-9._-]", a.Node)
	}
	for _, m := range append([]string{a.Manager}, a.Managers...) {
		if err := enrol.CheckURL(m); err != nil {
			return fmt.Errorf("conductor_agent: manager %v", err)
		}
	}
	if a.IdentityDir == "" {
		a.IdentityDir = filepath.Join(caddy.AppDataDir(), "conductor", "identity", a.Node)
	}
	if a.Fleet == "" {
		a.Fleet = "conductor"
	}
	if a.Role == "" {
		a.Role = "frontend"
	}
	if a.Role != "frontend" && a.Role != "backend" {
		return fmt.Errorf("conductor_agent: role %q: want frontend or backend", a.Role)
	}
	if a.BundleDir == "" {
		a.BundleDir = filepath.Join(caddy.AppDataDir(), "conductor", "bundles")
	}
	if a.Interval == 0 {
		a.Interval = caddy.Duration(time.Second)
	}
	if a.SigningKey != "" {
		k, err := hex.DecodeString(a.SigningKey)
		if err != nil || len(k) != ed25519.PublicKeySize {
			return fmt.Errorf("conductor_agent: signing_key must be a hex Ed25519 public key")
		}
	}
	if prev := runningAgent(); prev != nil && prev.store != nil {
		a.store = prev.store
		if prev.store.Dir != a.BundleDir {
			a.logger.Warn("bundle_dir changed: it takes effect at the next start", zap.String("in_use", prev.store.Dir))
		}
	} else {
		a.store = bundle.NewStore(a.BundleDir, a.logger)
	}
	if a.CAFile != "" {
		pool, err := enrol.LoadRoots(a.CAFile)
		if err != nil {
			return fmt.Errorf("conductor_agent: ca_file: %v", err)
		}
		a.roots = pool
	}
	return nil
}

// Start loads the node's identity (enrolling it with the join token the
// first time: not in Provision, which `caddy validate` runs too), then
// runs the node's worker with this config.
//
// The worker outlives config reloads: installing a bundle reloads the
// config, which starts this app and stops its predecessor while the
// worker that asked for the reload waits for the answer. So the new
// config's agent takes the worker over from the running config's agent,
// which it finds through Caddy (the active context's conductor_agent app),
// rather than through a package variable.
func (a *App) Start() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	id, err := enrol.Load(ctx, enrol.Config{Dir: a.IdentityDir, Managers: append([]string{a.Manager}, a.Managers...), Roots: a.roots,
		JoinToken: a.JoinToken, Fleet: a.Fleet, Name: a.Node, Role: a.Role, Logger: a.logger})
	if err != nil {
		return fmt.Errorf("conductor_agent: %v", err)
	}
	cfg := a.config()
	cfg.id = id
	var w *worker
	if prev := runningAgent(); prev != nil && prev != a {
		if w = prev.handOver(); w != nil {
			a.prev = prev
		}
	}
	fresh := w == nil
	if fresh {
		w = newWorker(cfg, a.store, a.logger)
	}
	if err := w.setPeer(&cfg); err != nil {
		if !fresh {
			a.prev.takeBack(w)
		}
		return fmt.Errorf("conductor_agent: %v", err)
	}
	w.reconfigure(cfg)
	if fresh {
		w.start()
	}
	a.cfg = cfg
	a.w.Store(w)
	return nil
}

// runningAgent is the agent of the config that runs now, if any.
func runningAgent() *App {
	active := caddy.ActiveContext()
	if active.Context == nil {
		return nil
	}
	app, err := active.AppIfConfigured("conductor_agent")
	if err != nil {
		return nil
	}
	a, _ := app.(*App)
	return a
}

// BundleStore is the node's bundle store, for the `bundle` handler.
func (a *App) BundleStore() *bundle.Store { return a.store }

// worker is the node's worker while this config runs it, or nil. It is
// read on every request (conductor_meter, conductor_pull): no lock.
func (a *App) worker() *worker {
	if a == nil {
		return nil
	}
	return a.w.Load()
}

// handOver gives the worker to the next config's agent.
func (a *App) handOver() *worker { return a.w.Swap(nil) }

// takeBack resumes running w with this config's settings (the config
// that took it over did not start). a.cfg was set when a started, which
// happened before the config that took w over was loaded.
func (a *App) takeBack(w *worker) {
	cfg := a.cfg
	w.setPeer(&cfg)
	w.reconfigure(cfg)
	a.w.Store(w)
}

// Stop stops the worker, unless the next config took it over. If this
// config never became the running one (its start failed) and the one it
// took the worker from still runs, the worker goes back to that one.
func (a *App) Stop() error {
	w := a.handOver()
	if w == nil {
		return nil
	}
	if p := a.prev; p != nil && runningAgent() == p {
		p.takeBack(w)
		return nil
	}
	go w.stop() // it may be waiting on the admin API that is stopping us
	return nil
}

func (a *App) config() workerConfig {
	c := workerConfig{
		report:    shifting.NodeReport{ID: a.Node, Role: a.Role, Region: a.Region, Addr: a.Addr, Probe: strings.TrimPrefix(a.Probe, "http://"), Upstream: a.Upstream},
		managers:  append([]string{a.Manager}, a.Managers...),
		bundleDir: a.BundleDir, interval: time.Duration(a.Interval), roots: a.roots, fleet: a.Fleet, peerListen: a.PeerListen, links: a.links,
	}
	c.policy.InsecureUnsigned = a.InsecureUnsigned
	if a.SigningKey != "" {
		k, _ := hex.DecodeString(a.SigningKey)
		c.policy.Key = ed25519.PublicKey(k)
	}
	return c
}

var (
	_ caddy.App         = (*App)(nil)
	_ caddy.Provisioner = (*App)(nil)
)
