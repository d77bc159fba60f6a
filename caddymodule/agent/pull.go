package agent

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/conductor-edge/conductor/shifting"
)

func init() {
	caddy.RegisterModule(Pull{})
}

// Pull is `http.handlers.conductor_pull`, on a front-end. A request for a
// site this front-end does not hold (its bundle route did not take it)
// asks the manager for the site: the manager assigns it here, on demand,
// and names the peers that already hold the bundle, which the agent
// fetches from them before falling back to the manager. The request
// itself goes on to the next handler (the proxy to the origin) rather
// than wait: installing reloads Caddy's config, which waits for in-flight
// requests. Peers fetch bundles from each other over peer_listen (peer.go).
type Pull struct {
	agent *App
}

// Provision finds the agent (conductor_agent) of this config.
func (p *Pull) Provision(ctx caddy.Context) error {
	p.agent = agentOf(ctx)
	return nil
}

// CaddyModule returns the Caddy module information.
func (Pull) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.conductor_pull", New: func() caddy.Module { return new(Pull) }}
}

const peerPath = "/.well-known/conductor-bundle/"

// ServeHTTP serves peers, or starts a pull, and passes the request on.
func (p *Pull) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	wk := p.agent.worker()
	if wk == nil {
		return next.ServeHTTP(w, r)
	}
	wk.maybePull(siteOf(r.Host))
	return next.ServeHTTP(w, r)
}

func (w *worker) rawPath(digest string) string {
	return filepath.Join(w.conf().bundleDir, "raw", strings.ReplaceAll(digest, ":", "-"))
}

// maybePull asks the manager for a site this node lacks, once, in the
// background; a site the manager does not know is not asked again for a
// minute, and at most 4 pulls run at a time, so hostile Host headers
// cannot make the agent flood the manager.
func (w *worker) maybePull(site string) {
	now := time.Now()
	w.mu.Lock()
	_, have := w.installed[site]
	until, negative := w.noSite[site]
	busy := w.pulling[site] || len(w.pulling) >= 4
	if have || (negative && now.Before(until)) || busy || site == "" {
		w.mu.Unlock()
		return
	}
	w.pulling[site] = true
	if len(w.noSite) > 1000 {
		w.noSite = map[string]time.Time{}
	}
	w.wg.Add(1)
	w.mu.Unlock()
	go func() {
		defer w.wg.Done()
		defer func() {
			w.mu.Lock()
			delete(w.pulling, site)
			w.mu.Unlock()
		}()
		ctx, cancel := context.WithTimeout(w.ctx, 10*time.Second)
		defer cancel()
		cfg := w.conf()
		body, _ := json.Marshal(map[string]string{"node": cfg.report.ID})
		resp, out, err := w.managerDo(ctx, http.MethodPost, "/v1/sites/"+site+"/pull", body)
		if err != nil || resp.StatusCode != http.StatusOK {
			w.mu.Lock()
			w.noSite[site] = time.Now().Add(time.Minute)
			w.mu.Unlock()
			return
		}
		var ans shifting.PullAnswer
		if json.Unmarshal(out, &ans) != nil {
			return
		}
		w.mu.Lock()
		w.peers[ans.Digest] = ans.Peers
		w.mu.Unlock()
		w.logger.Info("site pulled on demand", zap.String("site", site), zap.String("digest", ans.Digest), zap.Strings("peers", ans.Peers))
		// The manager's assignment wakes the assignment loop, which installs it.
	}()
}

// fetch gets a bundle's bytes and signature: from a peer that holds it
// when one is known, else from the manager.
func (w *worker) fetch(ctx context.Context, digest string) ([]byte, []byte, string, error) {
	w.mu.Lock()
	peers := w.peers[digest]
	w.mu.Unlock()
	for _, p := range peers {
		resp, data, err := w.peerGet(ctx, "https://"+p+peerPath+digest)
		if err == nil && resp.StatusCode == http.StatusOK {
			sig, _ := hex.DecodeString(resp.Header.Get("X-Bundle-Signature"))
			return data, sig, "peer " + p, nil
		}
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		w.logger.Warn("peer did not give the bundle; trying the next source", zap.String("peer", p), zap.Int("status", status), zap.Error(err))
	}
	resp, data, err := w.managerDo(ctx, http.MethodGet, "/v1/bundles/"+digest, nil)
	if err != nil {
		return nil, nil, "", err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, nil, "", fmt.Errorf("manager: %s", resp.Status)
	}
	sig, _ := hex.DecodeString(resp.Header.Get("X-Bundle-Signature"))
	return data, sig, "manager", nil
}

var (
	_ caddyhttp.MiddlewareHandler = (*Pull)(nil)
	_ caddy.Provisioner           = (*Pull)(nil)
)
