package agent

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
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

	"github.com/conductor-edge/conductor/caddymodule/bundle"
	"github.com/conductor-edge/conductor/caddymodule/loadindex"
	"github.com/conductor-edge/conductor/caddymodule/waitingroom"
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
	bundleDir  string
	policy     bundle.Policy
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

	store *bundle.Store // what the `bundle` handler serves
	// backends is the manager's back-end assignment: site → upstreams,
	// read by the `dynamic conductor` upstreams on every request.
	backends atomic.Pointer[map[string][]string]

	mu      sync.Mutex
	cfg     workerConfig
	failed  string
	refused map[string]bool      // digests the store refused by policy
	pulling map[string]bool      // sites being pulled on demand
	noSite  map[string]time.Time // sites the manager does not know, until
	peers   map[string][]string  // digest → peers holding it

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	cur    atomic.Int32 // the manager in use, an index into managers
}

func newWorker(cfg workerConfig, store *bundle.Store, logger *zap.Logger) *worker {
	w := &worker{cfg: cfg, logger: logger, client: clientFor(cfg), meter: newCounts(), refused: map[string]bool{},
		pulling: map[string]bool{}, noSite: map[string]time.Time{}, peers: map[string][]string{},
		store: store}
	w.store.SetPolicy(cfg.policy)
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
	w.store.Close()
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

// reconfigure takes a new config's settings. What it installed stays:
// the bundles are in the store, not in Caddy's config.
func (w *worker) reconfigure(cfg workerConfig) {
	w.store.SetPolicy(cfg.policy)
	w.mu.Lock()
	if !slices.Equal(cfg.policy.Key, w.cfg.policy.Key) || cfg.policy.InsecureUnsigned != w.cfg.policy.InsecureUnsigned {
		w.refused = map[string]bool{} // a new key may accept what the old refused
	}
	w.cfg = cfg
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
		rep.Bundles = w.store.Installed()
		w.mu.Lock()
		rep.Failed = w.failed
		w.mu.Unlock()
		now := time.Now()
		rep.Rooms, rep.Gates = waitingroom.FleetRooms(), loadindex.FleetGates(now)
		b, _ := json.Marshal(rep)
		resp, body, err := w.managerDo(ctx, http.MethodPost, "/v1/nodes/"+rep.ID+"/report", b)
		switch {
		case err != nil:
			w.logger.Debug("report to the manager", zap.Error(err))
		case resp.StatusCode >= 300:
			w.logger.Warn("manager refused the report", zap.Int("status", resp.StatusCode), zap.ByteString("body", body))
		case resp.StatusCode == http.StatusOK:
			// The answer renews this front-end's admission leases.
			var ans shifting.ReportAnswer
			if err := json.Unmarshal(body, &ans); err == nil {
				waitingroom.ApplyLeases(ans.Rooms, now)
				loadindex.ApplyGateLeases(ans.Gates, now)
			}
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
	// What this node served before a restart, it serves again at once,
	// before the manager is reached.
	w.store.Restore()
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
		if as.Backends == nil {
			as.Backends = map[string][]string{}
		}
		w.backends.Store(&as.Backends)
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
	have := w.store.Installed()
	sites := make([]string, 0, len(want))
	for s := range want {
		sites = append(sites, s)
	}
	slices.Sort(sites)
	for _, site := range sites {
		digest := want[site]
		if have[site] == digest {
			continue
		}
		w.mu.Lock()
		refused := w.refused[digest]
		w.mu.Unlock()
		if refused {
			continue // refused once, by policy: it will be refused again
		}
		start := time.Now()
		if err := w.install(ctx, site, digest); err != nil {
			w.logger.Error("bundle not installed; the previous version stays", zap.String("site", site), zap.String("digest", digest), zap.Error(err))
			w.mu.Lock()
			w.failed = fmt.Sprintf("%s %s: %v", site, digest, err)
			if errors.Is(err, bundle.ErrRefused) && len(w.refused) < 1000 {
				w.refused[digest] = true
			}
			w.mu.Unlock()
			continue
		}
		w.logger.Info("bundle installed", zap.String("site", site), zap.String("digest", digest), zap.Duration("took", time.Since(start)))
		w.mu.Lock()
		w.failed = ""
		w.mu.Unlock()
	}
	for site := range have {
		if _, ok := want[site]; ok {
			continue
		}
		if err := w.store.Remove(site); err != nil {
			w.logger.Error("removing bundle", zap.String("site", site), zap.Error(err))
			continue
		}
		w.logger.Info("bundle removed", zap.String("site", site))
	}
}

// install fetches a bundle to disk (from a peer or the manager; never
// whole in memory) and hands it to the store, which checks it against the
// node's policy, unpacks it and swaps it in. No Caddy config changes.
func (w *worker) install(ctx context.Context, site, digest string) error {
	raw := w.rawPath(digest)
	if err := os.MkdirAll(filepath.Dir(raw), 0o755); err != nil {
		return err
	}
	part := raw + ".part"
	defer os.Remove(part)
	sig, from, err := w.fetch(ctx, digest, part)
	if err != nil {
		return err
	}
	w.logger.Info("bundle fetched", zap.String("site", site), zap.String("from", from))
	if err := w.store.Install(site, digest, sig, part); err != nil {
		return fmt.Errorf("bundle from %s: %w", from, err)
	}
	// Keep the bytes, so peers can fetch them from here.
	if err := os.Rename(part, raw); err == nil {
		os.WriteFile(raw+".sig", []byte(hex.EncodeToString(sig)), 0o644)
	}
	return nil
}
