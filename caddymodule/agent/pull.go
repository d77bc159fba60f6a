package agent

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
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
	have := w.store.Get(site) != nil
	w.mu.Lock()
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

// fetch streams a bundle's bytes into file and returns its signature:
// from a peer that holds it when one is known, else from the manager.
func (w *worker) fetch(ctx context.Context, digest, file string) ([]byte, string, error) {
	w.mu.Lock()
	peers := w.peers[digest]
	peerC := w.peerC
	w.mu.Unlock()
	for _, p := range peers {
		if peerC == nil {
			break
		}
		sig, err := download(ctx, peerC, "https://"+p+peerPath+digest, file)
		if err == nil {
			return sig, "peer " + p, nil
		}
		w.logger.Warn("peer did not give the bundle; trying the next source", zap.String("peer", p), zap.Error(err))
	}
	ms := w.conf().managers
	var err error
	for i := range ms {
		n := (int(w.cur.Load()) + i) % len(ms)
		w.mu.Lock()
		c := w.client
		w.mu.Unlock()
		var sig []byte
		if sig, err = download(ctx, c, ms[n]+"/v1/bundles/"+digest, file); err == nil {
			return sig, "manager", nil
		}
	}
	return nil, "", err
}

// download streams url's body into file, up to the largest bundle.
func download(ctx context.Context, c *http.Client, url, file string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	f, err := os.Create(file)
	if err != nil {
		return nil, err
	}
	n, err := io.Copy(f, io.LimitReader(resp.Body, shifting.MaxBundleBytes+1))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && n > shifting.MaxBundleBytes {
		err = fmt.Errorf("bundle larger than %d bytes", shifting.MaxBundleBytes)
	}
	if err != nil {
		return nil, err
	}
	return hex.DecodeString(resp.Header.Get("X-Bundle-Signature"))
}

var (
	_ caddyhttp.MiddlewareHandler = (*Pull)(nil)
	_ caddy.Provisioner           = (*Pull)(nil)
)
