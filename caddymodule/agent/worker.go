package agent

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/conductor-edge/conductor/internal/enrol"
	"github.com/conductor-edge/conductor/shifting"
)

type workerConfig struct {
	report   shifting.NodeReport
	managers []string
	id       *enrol.Identity // this node's certificate, for the manager and peers
	fleet    string
	// peerListen is where this front-end serves bundles to its peers
	// (peer.go); empty: it serves none.
	peerListen string
	links      linkSource // nil: no TMP links to report
	admin      string
	server     string
	probe      string
	bundleDir  string
	key        ed25519.PublicKey
	interval   time.Duration
	roots      *x509.CertPool
}

// linkSource is what reports this node's TMP links for the manager: the
// conductor app, when the config has one.
type linkSource interface {
	LinkQuality() map[string]shifting.LinkQuality
}

// worker reports to the manager and applies its assignments.
type worker struct {
	logger *zap.Logger
	client *http.Client
	meter  *counts      // requests per site, from conductor_meter (meter.go)
	peerC  *http.Client // to peers (peer.go)
	peer   *peerServer  // serving peers, if peer_listen is set

	mu        sync.Mutex
	cfg       workerConfig
	installed map[string]string // site → digest
	failed    string
	reconcile bool
	pulling   map[string]bool      // sites being pulled on demand
	noSite    map[string]time.Time // sites the manager does not know, until
	peers     map[string][]string  // digest → peers holding it

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	cur    atomic.Int32 // the manager in use, an index into managers
}

func newWorker(cfg workerConfig, logger *zap.Logger) *worker {
	w := &worker{cfg: cfg, logger: logger, installed: map[string]string{}, client: clientFor(cfg), meter: newCounts(),
		pulling: map[string]bool{}, noSite: map[string]time.Time{}, peers: map[string][]string{}}
	if cfg.id != nil {
		w.peerC = peerClient(cfg.id)
	}
	return w
}

// clientFor presents the node's certificate to the manager and trusts the
// configured CA for the manager's.
func clientFor(cfg workerConfig) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if cfg.id != nil {
		tr.TLSClientConfig = cfg.id.TLSConfig()
	}
	return &http.Client{Timeout: 40 * time.Second, Transport: tr}
}

func (w *worker) start() {
	ctx, cancel := context.WithCancel(context.Background())
	w.ctx, w.cancel = ctx, cancel
	w.wg.Add(2)
	go w.reportLoop(ctx)
	go w.assignLoop(ctx)
}

func (w *worker) stop() {
	w.cancel()
	w.wg.Wait()
	w.mu.Lock()
	p := w.peer
	w.peer = nil
	w.mu.Unlock()
	if p != nil {
		p.stop()
	}
}

// setPeer starts, moves or stops the peer server to match cfg, and notes
// its address in the report. The server outlives config reloads with the
// worker.
func (w *worker) setPeer(cfg *workerConfig) error {
	w.mu.Lock()
	old := w.peer
	w.mu.Unlock()
	// Keep the running server if it listens where asked (":0" asks for
	// any port on that host).
	samePlace := old != nil && (old.addr == cfg.peerListen || strings.HasSuffix(cfg.peerListen, ":0") && hostOf(old.addr) == hostOf(cfg.peerListen))
	if samePlace {
		cfg.report.Peer = old.addr
		return nil
	}
	if old != nil {
		old.stop()
	}
	var p *peerServer
	if cfg.peerListen != "" && cfg.id != nil {
		var err error
		if p, err = startPeerServer(cfg.peerListen, cfg.id, cfg.fleet, w); err != nil {
			return err
		}
		cfg.report.Peer = p.addr
	}
	w.mu.Lock()
	w.peer = p
	w.mu.Unlock()
	return nil
}

func hostOf(addr string) string {
	h, _, _ := net.SplitHostPort(addr)
	return h
}

// peerGet fetches from a peer.
func (w *worker) peerGet(ctx context.Context, url string) (*http.Response, []byte, error) {
	w.mu.Lock()
	c := w.peerC
	w.mu.Unlock()
	if c == nil {
		return nil, nil, fmt.Errorf("no node certificate to show peers")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, nil, err
	}
	return readAll(c, req)
}

// readAll sends req and reads the answer, up to the largest bundle.
func readAll(c *http.Client, req *http.Request) (*http.Response, []byte, error) {
	resp, err := c.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 300<<20))
	return resp, b, err
}

// reconfigure takes a new config's settings; after a reload the routes it
// installed may be gone (a Caddyfile reload replaces them), so it checks.
func (w *worker) reconfigure(cfg workerConfig) {
	w.mu.Lock()
	w.cfg = cfg
	w.reconcile = true
	w.client = clientFor(cfg)
	if cfg.id != nil {
		w.peerC = peerClient(cfg.id)
	}
	w.mu.Unlock()
}

func (w *worker) conf() workerConfig {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.cfg
}

func (w *worker) request(ctx context.Context, method, url string, body []byte) (*http.Response, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	// No bearer secret goes anywhere: the manager and the peers know this
	// node by its certificate (peer.go).
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	w.mu.Lock()
	c := w.client
	w.mu.Unlock()
	return readAll(c, req)
}

// managerDo sends a request to the manager in use; on a connection error
// or a 503 (a follower: the leader is elsewhere) it tries the next one,
// and keeps the one that answered.
func (w *worker) managerDo(ctx context.Context, method, path string, body []byte) (*http.Response, []byte, error) {
	ms := w.conf().managers
	var resp *http.Response
	var out []byte
	var err error
	for i := 0; i < len(ms); i++ {
		n := (int(w.cur.Load()) + i) % len(ms)
		resp, out, err = w.request(ctx, method, ms[n]+path, body)
		if err == nil && resp.StatusCode != http.StatusServiceUnavailable {
			w.cur.Store(int32(n))
			return resp, out, nil
		}
		if ctx.Err() != nil {
			break
		}
	}
	return resp, out, err
}

func (w *worker) reportLoop(ctx context.Context) {
	defer w.wg.Done()
	for {
		cfg := w.conf()
		select {
		case <-ctx.Done():
			return
		case <-time.After(cfg.interval):
		}
		if cfg.id != nil {
			if err := cfg.id.MaybeRenew(ctx); err != nil {
				w.logger.Warn("node certificate", zap.Error(err))
			}
		}
		rep := cfg.report
		rep.RPS, rep.SiteRPS, rep.ClientLatencyMS = w.meter.take(time.Now())
		rep.Load = loadAverage()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		rep.MemBytes = ms.Sys
		if cfg.links != nil {
			rep.Links = cfg.links.LinkQuality()
		}
		w.mu.Lock()
		rep.Bundles = map[string]string{}
		for s, d := range w.installed {
			rep.Bundles[s] = d
		}
		rep.Failed = w.failed
		w.mu.Unlock()
		b, _ := json.Marshal(rep)
		resp, body, err := w.managerDo(ctx, http.MethodPost, "/v1/nodes/"+rep.ID+"/report", b)
		if err != nil {
			w.logger.Debug("report to the manager", zap.Error(err))
		} else if resp.StatusCode >= 300 {
			w.logger.Warn("manager refused the report", zap.Int("status", resp.StatusCode), zap.ByteString("body", body))
		}
	}
}

func loadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f, err := strconv.ParseFloat(strings.Fields(string(b))[0], 64)
	if err != nil {
		return 0
	}
	return f / float64(runtime.NumCPU())
}

// assignLoop long-polls the manager for this node's assignments and
// installs or removes bundles to match.
func (w *worker) assignLoop(ctx context.Context) {
	defer w.wg.Done()
	var version uint64
	for ctx.Err() == nil {
		cfg := w.conf()
		resp, body, err := w.managerDo(ctx, http.MethodGet, fmt.Sprintf("/v1/nodes/%s/assignments?wait=%d", cfg.report.ID, version), nil)
		if err != nil || resp.StatusCode != 200 {
			if ctx.Err() == nil {
				w.logger.Debug("assignments", zap.Error(err))
				select {
				case <-ctx.Done():
				case <-time.After(time.Second):
				}
			}
			continue
		}
		var as shifting.Assignments
		if err := json.Unmarshal(body, &as); err != nil {
			continue
		}
		version = as.Version
		w.mu.Lock()
		for site, peers := range as.Peers {
			if d, ok := as.Sites[site]; ok {
				w.peers[d] = peers
			}
		}
		w.mu.Unlock()
		w.apply(ctx, as.Sites)
	}
}

func (w *worker) apply(ctx context.Context, want map[string]string) {
	w.mu.Lock()
	reconcile := w.reconcile
	w.reconcile = false
	have := map[string]string{}
	for s, d := range w.installed {
		have[s] = d
	}
	w.mu.Unlock()
	sites := make([]string, 0, len(want))
	for s := range want {
		sites = append(sites, s)
	}
	slices.Sort(sites)
	for _, site := range sites {
		digest := want[site]
		if have[site] == digest && !(reconcile && !w.routeExists(ctx, site)) {
			continue
		}
		start := time.Now()
		if err := w.install(ctx, site, digest); err != nil {
			w.logger.Error("bundle not installed; the previous version stays", zap.String("site", site), zap.String("digest", digest), zap.Error(err))
			w.mu.Lock()
			w.failed = fmt.Sprintf("%s %s: %v", site, digest, err)
			w.mu.Unlock()
			continue
		}
		w.logger.Info("bundle installed", zap.String("site", site), zap.String("digest", digest), zap.Duration("took", time.Since(start)))
		w.mu.Lock()
		w.installed[site] = digest
		w.failed = ""
		w.mu.Unlock()
	}
	for site := range have {
		if _, ok := want[site]; ok {
			continue
		}
		if err := w.uninstall(ctx, site); err != nil {
			w.logger.Error("removing bundle", zap.String("site", site), zap.Error(err))
			continue
		}
		w.logger.Info("bundle removed", zap.String("site", site))
		w.mu.Lock()
		delete(w.installed, site)
		w.mu.Unlock()
	}
}

func routeID(site string) string {
	return "conductor-bundle-" + strings.NewReplacer(".", "-", ":", "-").Replace(site)
}

func (w *worker) routeExists(ctx context.Context, site string) bool {
	resp, _, err := w.request(ctx, http.MethodGet, w.conf().admin+"/id/"+routeID(site), nil)
	return err == nil && resp.StatusCode == 200
}

// install fetches, verifies, unpacks and applies a bundle. Caddy applies a
// config change whole or not at all, so a route Caddy refuses leaves the
// previous version serving; a route Caddy takes but that answers the
// site's "/" with a 5xx is rolled back to the previous one.
func (w *worker) install(ctx context.Context, site, digest string) error {
	cfg := w.conf()
	data, sig, from, err := w.fetch(ctx, digest)
	if err != nil {
		return err
	}
	v, err := shifting.Verify(data, digest, sig, cfg.key)
	if err != nil {
		return fmt.Errorf("bundle from %s: %v", from, err)
	}
	w.logger.Info("bundle fetched", zap.String("site", site), zap.String("from", from))
	// Keep the bytes, so peers can fetch them from here.
	if err := os.MkdirAll(filepath.Dir(w.rawPath(digest)), 0o755); err == nil {
		os.WriteFile(w.rawPath(digest), data, 0o644)
		os.WriteFile(w.rawPath(digest)+".sig", []byte(hex.EncodeToString(sig)), 0o644)
	}
	if v.Manifest.Site != site {
		return fmt.Errorf("bundle is for %s, not %s", v.Manifest.Site, site)
	}
	dir := filepath.Join(cfg.bundleDir, siteOf(site), strings.TrimPrefix(digest, "sha256:")[:16])
	routes, err := v.Unpack(dir)
	if err != nil {
		return err
	}
	// The route matches on {http.request.host}, not with a host matcher: a
	// host matcher would make Caddy's automatic HTTPS manage a certificate
	// for the site and turn this listener into TLS, which is the site
	// operator's decision, not the bundle's.
	route := map[string]any{
		"@id":   routeID(site),
		"match": []map[string]any{{"vars": map[string][]string{"{http.request.host}": {siteOf(site)}}}},
		// The meter first: the site's demand here is what placement uses.
		"handle":   []map[string]any{{"handler": "conductor_meter"}, {"handler": "subroute", "routes": routes}},
		"terminal": true,
	}
	body, _ := json.Marshal(route)
	prevResp, prev, _ := w.request(ctx, http.MethodGet, cfg.admin+"/id/"+routeID(site), nil)
	hadPrev := prevResp != nil && prevResp.StatusCode == 200
	if err := w.putRoute(ctx, site, body, hadPrev); err != nil {
		return err
	}
	if cfg.probe != "" {
		if status, perr := w.probeSite(ctx, site); perr != nil || status >= 500 {
			if hadPrev {
				w.putRoute(ctx, site, prev, true)
			} else {
				w.request(ctx, http.MethodDelete, cfg.admin+"/id/"+routeID(site), nil)
			}
			return fmt.Errorf("installed bundle answers %d (%v) for %s/: rolled back", status, perr, site)
		}
	}
	return nil
}

func (w *worker) putRoute(ctx context.Context, site string, body []byte, replace bool) error {
	cfg := w.conf()
	var resp *http.Response
	var out []byte
	var err error
	if replace {
		resp, out, err = w.request(ctx, http.MethodPatch, cfg.admin+"/id/"+routeID(site), body)
	} else {
		srv, serr := w.serverName(ctx)
		if serr != nil {
			return serr
		}
		// Index 0: the bundle's routes come before the site's proxy.
		resp, out, err = w.request(ctx, http.MethodPut, cfg.admin+"/config/apps/http/servers/"+srv+"/routes/0", body)
	}
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		return fmt.Errorf("caddy refused the routes: %s", strings.TrimSpace(string(out)))
	}
	return nil
}

func (w *worker) serverName(ctx context.Context) (string, error) {
	cfg := w.conf()
	if cfg.server != "" {
		return cfg.server, nil
	}
	resp, b, err := w.request(ctx, http.MethodGet, cfg.admin+"/config/apps/http/servers", nil)
	if err != nil || resp.StatusCode != 200 {
		return "", fmt.Errorf("listing servers: %v", err)
	}
	var servers map[string]struct {
		Listen []string `json:"listen"`
	}
	json.Unmarshal(b, &servers)
	names := make([]string, 0, len(servers))
	for n := range servers {
		names = append(names, n)
	}
	slices.Sort(names)
	if len(names) == 0 {
		return "", fmt.Errorf("no HTTP server")
	}
	if _, port, ok := strings.Cut(strings.TrimPrefix(cfg.probe, "http://"), ":"); ok {
		for _, n := range names {
			for _, l := range servers[n].Listen {
				if strings.HasSuffix(l, ":"+port) {
					return n, nil
				}
			}
		}
	}
	return names[0], nil
}

// probeSite asks the front-end for the site's root, as a visitor would.
// The install it checks has just reloaded Caddy's HTTP server, and the old
// server may still take a connection and close it unanswered as it shuts
// down (EOF before any byte): a bundle was rolled back for that once in
// ten test runs. So each try is a fresh connection (a kept-alive one is
// the old server's), and a try that gets no answer at all is made again,
// up to probeTries times; an answer, whatever its status, is final.
func (w *worker) probeSite(ctx context.Context, site string) (int, error) {
	cfg := w.conf()
	probe := cfg.probe
	if !strings.Contains(probe, "://") {
		probe = "http://" + probe
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	defer client.CloseIdleConnections()
	var err error
	for try := 0; try < probeTries; try++ {
		if try > 0 {
			select {
			case <-time.After(200 * time.Millisecond):
			case <-ctx.Done():
				return 0, ctx.Err()
			}
		}
		var req *http.Request
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, probe+"/", nil)
		if err != nil {
			return 0, err
		}
		req.Host = site
		var resp *http.Response
		resp, err = client.Do(req)
		if err != nil {
			continue
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	return 0, err
}

const probeTries = 3

func (w *worker) uninstall(ctx context.Context, site string) error {
	resp, out, err := w.request(ctx, http.MethodDelete, w.conf().admin+"/id/"+routeID(site), nil)
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 && resp.StatusCode != 404 {
		return fmt.Errorf("caddy: %s", strings.TrimSpace(string(out)))
	}
	return nil
}
