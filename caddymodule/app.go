// Package caddymodule holds Conductor's Caddy modules: the conductor app, the
// tmp reverse-proxy transport and the tmp listener network. Importing it
// registers all of them, so `xcaddy build --with
// github.com/conductor-edge/conductor` gets everything.
package caddymodule

import (
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/conductor-edge/conductor/tmptransport"
)

func init() {
	caddy.RegisterModule(App{})
}

// App is the `conductor` app: the node's identity, the TMP credentials, and
// the TMP sessions this node holds. It is configured through the global
// Caddyfile option `conductor { … }`.
type App struct {
	// Name of this node, e.g. "fe-paris-1". Defaults to the host name.
	Name string `json:"name,omitempty"`
	// Role of this node: "frontend", "backend" or "both" (default).
	Role string `json:"role,omitempty"`
	// Region of this node, used for placement and DNS steering.
	Region string `json:"region,omitempty"`
	// TLS holds the credentials of the TMP link. By default they are issued
	// by the fleet's own CA (in Caddy's storage), so every node that shares
	// the storage trusts every other in its role.
	TLS *TLSConfig `json:"tls,omitempty"`
	// HandshakeTimeout bounds a TMP handshake (default 10s).
	HandshakeTimeout caddy.Duration `json:"handshake_timeout,omitempty"`
	// MaxHalfOpen bounds half-open TMP sessions on a listener (default
	// 256); per source prefix, MaxHalfOpenPerPrefix (default 32).
	MaxHalfOpen          int `json:"max_half_open,omitempty"`
	MaxHalfOpenPerPrefix int `json:"max_half_open_per_prefix,omitempty"`
	// Retry is "auto" (default: a stateless Retry once a quarter of the
	// half-open budget is taken by unvalidated sources) or "always".
	Retry string `json:"retry,omitempty"`
	// Weights of the TMP blender per priority 0..4 (default 16 8 4 2 1).
	Weights []int `json:"weights,omitempty"`
	// IdleTimeout of TMP sessions (default 30s).
	IdleTimeout caddy.Duration `json:"idle_timeout,omitempty"`
	// MaxStreams is how many concurrent streams a peer may open on one TMP
	// session (default 4096).
	MaxStreams int `json:"max_streams,omitempty"`
	// Services are the non-HTTP services a back-end connects TMP streams
	// to, by name (service.go): a stream naming a service not listed here
	// is refused, so a front-end cannot make the back-end dial anything
	// else.
	Services map[string]*Service `json:"services,omitempty"`

	ctx    caddy.Context
	logger *zap.Logger
	creds  *credentials
	refs   *heldUpstreams // upstreams this config holds a reference to
}

// CaddyModule returns the Caddy module information.
func (App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "conductor",
		New: func() caddy.Module { return new(App) },
	}
}

// Provision sets up the node's identity and TMP credentials.
func (a *App) Provision(ctx caddy.Context) error {
	a.ctx = ctx
	a.logger = ctx.Logger()
	a.refs = &heldUpstreams{m: map[string]*upstream{}}
	if a.Role == "" {
		a.Role = "both"
	}
	if a.TLS == nil {
		a.TLS = &TLSConfig{}
	}
	var err error
	a.creds, err = a.TLS.newCredentials(ctx, a.nodeName(), a.Role, a.logger.Named("tmp"))
	if err != nil {
		return fmt.Errorf("conductor: tls: %w", err)
	}
	a.creds.start()
	return registerMetrics(ctx)
}

// Validate rejects bad configuration.
func (a *App) Validate() error {
	for name, svc := range a.Services {
		if err := svc.validate(name); err != nil {
			return err
		}
	}
	switch a.Role {
	case "frontend", "backend", "both":
	default:
		return fmt.Errorf("conductor: role %q: want frontend, backend or both", a.Role)
	}
	if len(a.Weights) != 0 && len(a.Weights) != tmptransport.NumPriorities {
		return fmt.Errorf("conductor: weights: want %d values (priorities 0..%d), got %d", tmptransport.NumPriorities, tmptransport.NumPriorities-1, len(a.Weights))
	}
	for i, w := range a.Weights {
		if w < 1 {
			return fmt.Errorf("conductor: weight of priority %d is %d; weights must be ≥ 1 so that no priority starves", i, w)
		}
	}
	if a.MaxStreams < 0 {
		return fmt.Errorf("conductor: max_streams %d is negative", a.MaxStreams)
	}
	if a.MaxHalfOpen < 0 || a.MaxHalfOpenPerPrefix < 0 {
		return fmt.Errorf("conductor: max_half_open %d %d: want positive values", a.MaxHalfOpen, a.MaxHalfOpenPerPrefix)
	}
	switch a.Retry {
	case "", "auto", "always":
	default:
		return fmt.Errorf("conductor: retry %q: want auto or always", a.Retry)
	}
	return nil
}

// Start implements caddy.App.
func (a *App) Start() error {
	a.logger.Info("conductor node started", zap.String("name", a.nodeName()), zap.String("role", a.Role), zap.String("region", a.Region))
	return nil
}

// Stop implements caddy.App. Sessions are not closed here: they live in a
// pool shared across config reloads (see Cleanup).
func (a *App) Stop() error { return nil }

// Cleanup releases this config's hold on the session pools; a session ends
// only when no config uses it any more, so a reload keeps the TMP links and
// drops no in-flight request.
func (a *App) Cleanup() error {
	if a.creds != nil {
		a.creds.close()
	}
	if a.refs == nil {
		return nil
	}
	a.refs.mu.Lock()
	defer a.refs.mu.Unlock()
	for _, u := range a.refs.m {
		upstreams.release(u)
	}
	a.refs.m = nil
	return nil
}

func (a *App) nodeName() string {
	if a.Name != "" {
		return a.Name
	}
	return defaultNodeName()
}

// tmpConfig returns the TMP configuration for dialing (client) or
// listening; its TLS reads the credentials in ref at every handshake.
func (a *App) tmpConfig(server bool, ref *credsRef) *tmptransport.Config {
	c := &tmptransport.Config{
		IdleTimeout:          time.Duration(a.IdleTimeout),
		MaxIncomingStreams:   a.MaxStreams,
		HandshakeTimeout:     time.Duration(a.HandshakeTimeout),
		MaxPendingHandshakes: a.MaxHalfOpen,
		MaxPendingPerPrefix:  a.MaxHalfOpenPerPrefix,
		Logger:               a.logger.Named("tmp"),
	}
	if a.Retry == "always" {
		c.RetryThreshold = -1
	}
	if len(a.Weights) == tmptransport.NumPriorities {
		copy(c.Weights[:], a.Weights)
	}
	if server {
		c.TLSConfig = ref.serverTLS()
	} else {
		c.TLSConfig = ref.clientTLS()
	}
	return c
}

// Interface guards.
var (
	_ caddy.App          = (*App)(nil)
	_ caddy.Provisioner  = (*App)(nil)
	_ caddy.Validator    = (*App)(nil)
	_ caddy.CleanerUpper = (*App)(nil)
)
