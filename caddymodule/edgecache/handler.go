// Package edgecache is Conductor's edge cache: the Caddy HTTP handler
// `edge_cache`, an RFC 9111 shared cache with RFC 5861's stale-while-
// revalidate and stale-if-error, request coalescing, purge by URL, prefix
// and tag, refresh ahead of expiry and warming, in memory with an optional
// disk tier. It is the seed's front-end cache: "the front-end … may
// respond to the request from its cache, … keeps its cache fresh and
// actively refreshes important entries".
package edgecache

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/conductor-edge/conductor/caddymodule/selfrequest"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Handler is `http.handlers.edge_cache`.
type Handler struct {
	// Name of the store. Handlers with the same name share one store, and
	// the store survives config reloads. Default "default".
	Name string `json:"name,omitempty"`
	// Site labels this handler's metrics. Default: the cache's name.
	Site string `json:"site,omitempty"`
	// MaxSize bounds the memory tier, in bytes. Default 256 MiB.
	MaxSize int64 `json:"max_size,omitempty"`
	// MaxEntrySize is the largest body stored. Default 16 MiB.
	MaxEntrySize int64 `json:"max_entry_size,omitempty"`
	// Policy is the eviction policy: tinylfu (default), lru, lfu, fifo or random.
	Policy string `json:"policy,omitempty"`
	// DiskDir enables a disk tier in this directory, bounded by DiskMaxSize
	// (default 1 GiB). Entries on disk survive a restart.
	DiskDir     string `json:"disk_dir,omitempty"`
	DiskMaxSize int64  `json:"disk_max_size,omitempty"`

	// StaleOnError serves a stored response up to this long past its
	// freshness when the origin errors, times out or answers 5xx, whatever
	// the response's own directives say (Varnish's grace, nginx's
	// proxy_cache_use_stale). 0 leaves it to stale-if-error.
	StaleOnError caddy.Duration `json:"stale_on_error,omitempty"`
	// OriginTimeout is how long a client waits for a revalidation before
	// it gets the stale response, when one may be served. The
	// revalidation goes on in the background. Default (and when 0) 5s.
	// When no stale response may be served, the client waits for the
	// origin as long as the background fetch lasts (BackgroundTimeout).
	OriginTimeout caddy.Duration `json:"origin_timeout,omitempty"`
	// StaleWhileRevalidate serves stale responses this long past their
	// freshness while refreshing in the background, at least (the
	// response's own stale-while-revalidate may allow longer).
	StaleWhileRevalidate caddy.Duration `json:"stale_while_revalidate,omitempty"`
	// HeuristicMax caps heuristic freshness (10 % of the time since
	// Last-Modified). Default 24h.
	HeuristicMax caddy.Duration `json:"heuristic_max,omitempty"`
	// LockTimeout is how long concurrent misses wait for the one fetch in
	// flight before going to the origin themselves. Default 5s.
	LockTimeout caddy.Duration `json:"lock_timeout,omitempty"`
	// BackgroundTimeout bounds a background fetch. Default 30s.
	BackgroundTimeout caddy.Duration `json:"background_timeout,omitempty"`

	// RefreshAhead refreshes a hot entry (HotHits hits or more) in the
	// background once this fraction of its freshness has passed, so it is
	// never served stale. Default 0.8; negative disables.
	RefreshAhead float64 `json:"refresh_ahead,omitempty"`
	HotHits      int64   `json:"hot_hits,omitempty"`
	// Warm lists URLs ("https://host/path" or "host/path") fetched into
	// the cache when the config starts: the seed's "active cache".
	Warm []string `json:"warm,omitempty"`

	// PurgeAllow lists the client ranges (CIDR) whose PURGE requests are
	// obeyed. Default loopback only.
	PurgeAllow []string `json:"purge_allow,omitempty"`
	// BypassCookies names cookies whose presence bypasses the cache (a
	// session cookie on a page the origin forgot to mark private).
	BypassCookies []string `json:"bypass_cookies,omitempty"`

	store     *Store
	storeKey  string
	purgeNets []*net.IPNet
	srv       *atomic.Pointer[caddyhttp.Server]
	misses    *flights
	bg        *bgFlights
	bgCtx     context.Context
	bgCancel  context.CancelFunc
	wg        *sync.WaitGroup
	ctx       caddy.Context
	logger    *zap.Logger
	m         *siteMetrics
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.edge_cache",
		New: func() caddy.Module { return new(Handler) },
	}
}

const cacheName = "conductor" // the cache's name in Cache-Status (RFC 9211 §2)

var stores = caddy.NewUsagePool()

// Provision applies defaults and opens (or joins) the store.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.ctx = ctx
	h.logger = ctx.Logger()
	if h.Name == "" {
		h.Name = "default"
	}
	if h.MaxSize == 0 {
		h.MaxSize = 256 << 20
	}
	if h.MaxEntrySize == 0 {
		h.MaxEntrySize = 16 << 20
	}
	h.MaxEntrySize = min(h.MaxEntrySize, h.MaxSize)
	if h.DiskDir != "" && h.DiskMaxSize == 0 {
		h.DiskMaxSize = 1 << 30
	}
	if h.OriginTimeout == 0 {
		h.OriginTimeout = caddy.Duration(5 * time.Second)
	}
	if h.HeuristicMax == 0 {
		h.HeuristicMax = caddy.Duration(24 * time.Hour)
	}
	if h.LockTimeout == 0 {
		h.LockTimeout = caddy.Duration(5 * time.Second)
	}
	if h.BackgroundTimeout == 0 {
		h.BackgroundTimeout = caddy.Duration(30 * time.Second)
	}
	if h.RefreshAhead == 0 {
		h.RefreshAhead = 0.8
	}
	if h.HotHits == 0 {
		h.HotHits = 3
	}
	if h.PurgeAllow == nil {
		h.PurgeAllow = []string{"127.0.0.0/8", "::1/128"}
	}
	for _, s := range h.PurgeAllow {
		_, n, err := net.ParseCIDR(s)
		if err != nil {
			ip := net.ParseIP(s)
			if ip == nil {
				return fmt.Errorf("purge_allow: %q is neither a CIDR range nor an IP address", s)
			}
			bits := 8 * len(ip.To16())
			if ip.To4() != nil {
				ip, bits = ip.To4(), 32
			}
			n = &net.IPNet{IP: ip, Mask: net.CIDRMask(bits, bits)}
		}
		h.purgeNets = append(h.purgeNets, n)
	}
	if err := registerMetrics(ctx); err != nil {
		return err
	}
	if h.Site == "" {
		h.Site = h.Name
	}
	h.m = newSiteMetrics(h.Site)
	cfg := StoreConfig{Name: h.Name, Policy: h.Policy, MaxBytes: h.MaxSize, DiskDir: h.DiskDir, DiskMaxSize: h.DiskMaxSize}
	h.storeKey = fmt.Sprintf("%s|%s|%d|%s|%d", cfg.Name, cfg.Policy, cfg.MaxBytes, cfg.DiskDir, cfg.DiskMaxSize)
	val, _, err := stores.LoadOrNew(h.storeKey, func() (caddy.Destructor, error) {
		return newStore(cfg, h.logger)
	})
	if err != nil {
		return err
	}
	h.store = val.(*Store)
	h.bgCtx, h.bgCancel = context.WithCancel(context.Background())
	h.srv = new(atomic.Pointer[caddyhttp.Server])
	// The http app provisions each server's routes with the server in
	// the context; background fetches go through it.
	if srv := selfrequest.Server(ctx); srv != nil {
		h.srv.Store(srv)
	}
	h.bg = &bgFlights{m: map[string]*bgFlight{}}
	h.misses = &flights{m: map[string]*flight{}}
	h.wg = new(sync.WaitGroup)
	if len(h.Warm) > 0 {
		h.wg.Add(1)
		go h.warmAtStart()
	}
	return nil
}

// Validate checks what Provision cannot default.
func (h *Handler) Validate() error {
	if _, err := newPolicy(h.Policy, 1, func(*entry) {}, nil); err != nil {
		return err
	}
	if h.MaxSize < 0 || h.MaxEntrySize < 0 || h.DiskMaxSize < 0 {
		return fmt.Errorf("sizes must not be negative")
	}
	if h.RefreshAhead >= 1 {
		return fmt.Errorf("refresh_ahead %v: must be a fraction of the freshness lifetime, below 1", h.RefreshAhead)
	}
	return nil
}

// Cleanup stops background fetches and releases the store.
func (h *Handler) Cleanup() error {
	if h.bgCancel != nil {
		h.bgCancel()
		h.wg.Wait()
	}
	if h.storeKey != "" {
		_, err := stores.Delete(h.storeKey)
		return err
	}
	return nil
}

// ServeHTTP answers from the cache when it can, and fills it otherwise.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if j, ok := r.Context().Value(jobCtxKey{}).(*job); ok && j.h == h && j.reached.CompareAndSwap(false, true) {
		return h.runJob(j, r, next)
	}
	if h.srv.Load() == nil { // provisioned outside a server (tests, other apps)
		if srv, ok := r.Context().Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server); ok && srv != nil {
			h.srv.Store(srv)
		}
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		selfrequest.Offer(r, h.freshBody)
	case "PURGE":
		return h.servePurge(w, r)
	default:
		return h.passUnsafe(w, r, next)
	}
	if r.Header.Get("Upgrade") != "" || h.bypassed(r) {
		w.Header().Set("Cache-Status", cacheName+"; fwd=bypass")
		h.m.requests["bypass"].Inc()
		return next.ServeHTTP(w, r)
	}
	reqCC := parseCacheControl(r.Header)
	if reqCC == nil && r.Header.Get("Pragma") == "no-cache" {
		reqCC = cacheControl{"no-cache": ""} // RFC 9111 §5.4
	}
	primary := primaryKey(r)
	if e := h.store.lookup(primary, r); e != nil {
		return h.serveStored(w, r, next, e, reqCC)
	}
	if reqCC.has("only-if-cached") {
		w.Header().Set("Cache-Status", cacheName+"; fwd=uri-miss; detail=only-if-cached")
		return caddyhttp.Error(http.StatusGatewayTimeout, fmt.Errorf("only-if-cached: not in cache"))
	}
	return h.serveMiss(w, r, next, primary, reqCC)
}

// freshBody is the shortcut (selfrequest.Shortcut) the cache offers to
// the esi handler above it: the body of a fresh, stored 200 for host+uri,
// counted as a hit. Anything that needs the full path (a miss, stale,
// no-cache, an answer that is itself an ESI template, a bypass cookie)
// says no.
func (h *Handler) freshBody(host, uri string, hdr http.Header) ([]byte, bool) {
	r := &http.Request{Method: http.MethodGet, Host: host, Header: hdr, URL: &url.URL{}}
	if u, err := url.ParseRequestURI(uri); err == nil {
		r.URL = u
	} else {
		return nil, false
	}
	if h.bypassed(r) || parseCacheControl(hdr) != nil || hdr.Get("Pragma") != "" {
		return nil, false
	}
	e := h.store.lookup(primaryKey(r), r)
	if e == nil || e.status != http.StatusOK || e.ttl(time.Now()) <= 0 || e.cc.has("no-cache") ||
		e.header.Get("Surrogate-Control") != "" {
		return nil, false
	}
	h.maybeRefreshAhead(r, e, time.Now())
	e.hits.Add(1)
	h.m.requests["hit"].Inc()
	h.m.bytesCache.Add(float64(len(e.body)))
	return e.body, true
}

func (h *Handler) bypassed(r *http.Request) bool {
	for _, name := range h.BypassCookies {
		if _, err := r.Cookie(name); err == nil {
			return true
		}
	}
	return false
}

// serveStored answers a request whose variant is stored: fresh, stale
// within what the directives and the operator allow, or after a
// revalidation the client waits for.
func (h *Handler) serveStored(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, e *entry, reqCC cacheControl) error {
	now := time.Now()
	ttl := e.ttl(now)
	fresh := ttl > 0 && !e.cc.has("no-cache")
	wantsFresh := reqCC.has("no-cache")
	if v, ok, valid := reqCC.duration("max-age"); ok && (!valid || e.age(now) > v) {
		wantsFresh = true
	}
	if v, ok, valid := reqCC.duration("min-fresh"); ok && valid && ttl < v {
		wantsFresh = true
	}
	if fresh && !wantsFresh {
		h.maybeRefreshAhead(r, e, now)
		return h.serveEntry(w, r, e, "hit", fmt.Sprintf("hit; ttl=%d", int64(ttl/time.Second)))
	}
	staleBy := -ttl
	// §4.2.4: must-revalidate, proxy-revalidate and (for a shared cache)
	// s-maxage forbid serving stale without revalidation.
	mustRevalidate := e.cc.has("must-revalidate") || e.cc.has("proxy-revalidate") || e.cc.has("s-maxage") || e.cc.has("no-cache")
	if !wantsFresh && !mustRevalidate && !fresh {
		window := max(staleWindow("stale-while-revalidate", e.cc, nil), time.Duration(h.StaleWhileRevalidate))
		if v, ok, valid := reqCC.duration("max-stale"); ok {
			if !valid && reqCC["max-stale"] == "" {
				v = 1 << 62 // max-stale with no value: any staleness (§5.2.1.2)
			}
			window = max(window, v)
		}
		if staleBy < window {
			h.startBackground(kindRevalidate, r.Host, r.URL.RequestURI(), r.Header, e)
			return h.serveEntry(w, r, e, "stale", fmt.Sprintf("hit; ttl=%d; detail=stale-while-revalidate", -int64(staleBy/time.Second)))
		}
	}

	// Revalidate, with the client waiting for the answer, or for the
	// stale response if the origin fails or is slow and stale is allowed.
	fl := h.startBackground(kindRevalidate, r.Host, r.URL.RequestURI(), r.Header, e)
	graceOK := h.staleOnErrorAllowed(e, reqCC, mustRevalidate, staleBy)
	var timeout <-chan time.Time
	if graceOK && h.OriginTimeout > 0 {
		t := time.NewTimer(time.Duration(h.OriginTimeout))
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-fl.done:
	case <-timeout:
		return h.serveEntry(w, r, e, "stale", fmt.Sprintf("hit; ttl=%d; detail=origin-timeout", -int64(staleBy/time.Second)))
	case <-r.Context().Done():
		return r.Context().Err()
	}
	switch {
	case fl.entry != nil:
		return h.serveEntry(w, r, fl.entry, "revalidated", fmt.Sprintf("fwd=stale; fwd-status=%d", fl.status))
	case (fl.err != nil || fl.status >= 500) && graceOK:
		return h.serveEntry(w, r, e, "stale", fmt.Sprintf("hit; ttl=%d; detail=stale-if-error", -int64(staleBy/time.Second)))
	case fl.resp != nil && !fl.resp.overflow && fl.status != http.StatusNotModified:
		return h.writeCaptured(w, r, fl.resp, fmt.Sprintf("fwd=stale; fwd-status=%d", fl.status))
	case fl.err != nil:
		w.Header().Set("Cache-Status", fmt.Sprintf("%s; fwd=stale; detail=%q", cacheName, "origin error"))
		return caddyhttp.Error(http.StatusBadGateway, fl.err)
	}
	// The answer was too large to keep, or a 304 for a variant that is no
	// longer stored: fetch it again for this client.
	return h.fetchLive(w, r, next, primaryKey(r), reqCC, "stale")
}

// staleOnErrorAllowed: RFC 5861's stale-if-error (the response's or the
// request's), or the operator's grace, which applies whatever the headers.
func (h *Handler) staleOnErrorAllowed(e *entry, reqCC cacheControl, mustRevalidate bool, staleBy time.Duration) bool {
	if staleBy < time.Duration(h.StaleOnError) {
		return true
	}
	return !mustRevalidate && staleBy < staleWindow("stale-if-error", e.cc, reqCC)
}

// serveMiss fetches a response nobody has stored yet. Concurrent misses on
// one URL wait for a single fetch (nginx's proxy_cache_lock).
func (h *Handler) serveMiss(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, primary string, reqCC cacheControl) error {
	if r.Method == http.MethodHead || r.Header.Get("Range") != "" {
		// Answer these from the origin as they are; the cache fills from
		// whole GETs and serves HEAD and ranges from what it holds.
		w.Header().Set("Cache-Status", cacheName+"; fwd=uri-miss")
		h.m.requests["miss"].Inc()
		return next.ServeHTTP(w, r)
	}
	fl, leader := h.misses.join(primary)
	if leader {
		defer h.misses.finish(primary, fl)
		return h.fetchLive(w, r, next, primary, reqCC, "uri-miss")
	}
	t := time.NewTimer(time.Duration(h.LockTimeout))
	defer t.Stop()
	select {
	case <-fl.done:
		if e := h.store.lookup(primary, r); e != nil && e.ttl(time.Now()) > 0 && !e.cc.has("no-cache") {
			return h.serveEntry(w, r, e, "collapsed", fmt.Sprintf("fwd=uri-miss; fwd-status=%d; collapsed", e.status))
		}
	case <-t.C:
	case <-r.Context().Done():
		return r.Context().Err()
	}
	return h.fetchLive(w, r, next, primary, reqCC, "uri-miss")
}

// fetchLive forwards the request with the client waiting, streams the
// answer to it and stores a copy when it may.
func (h *Handler) fetchLive(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, primary string, reqCC cacheControl, fwd string) error {
	// The client's own conditionals would get a 304 with nothing to store;
	// the cache asks for the whole response (a 200 answers any
	// conditional GET).
	for _, f := range []string{"If-None-Match", "If-Modified-Since", "If-Match", "If-Unmodified-Since", "If-Range"} {
		r.Header.Del(f)
	}
	h.m.fetches["miss"].Inc()
	h.m.requests["miss"].Inc()
	reqTime := time.Now()
	var stored *entry
	tee := newTeeWriter(w, h.MaxEntrySize, func(status int, hdr http.Header) bool {
		e, why := h.makeEntry(r, reqCC, status, hdr, nil, reqTime, time.Now())
		cs := fmt.Sprintf("%s; fwd=%s; fwd-status=%d", cacheName, fwd, status)
		if e == nil {
			hdr.Set("Cache-Status", cs+fmt.Sprintf("; detail=%q", why))
			return false
		}
		if cl, err := strconv.ParseInt(hdr.Get("Content-Length"), 10, 64); err == nil && cl > h.MaxEntrySize {
			hdr.Set("Cache-Status", cs+`; detail="too-large"`)
			return false
		}
		hdr.Set("Cache-Status", cs+"; stored")
		stored = e
		return true
	})
	err := next.ServeHTTP(tee, r)
	h.m.bytesOrigin.Add(float64(tee.written))
	if err != nil {
		return err
	}
	if body, ok := tee.captured(); ok && stored != nil {
		stored.body = bytes.Clone(body)
		h.store.put(stored)
	}
	return nil
}

// makeEntry builds the entry for a response, or says why it is not kept.
func (h *Handler) makeEntry(r *http.Request, reqCC cacheControl, status int, hdr http.Header, body []byte, reqTime, respTime time.Time) (*entry, string) {
	if hdr.Get("Content-Type") == "text/event-stream" {
		return nil, "stream"
	}
	cc := parseCacheControl(hdr)
	if ok, why := storable(r, reqCC, status, hdr, cc); !ok {
		return nil, why
	}
	lifetime := freshnessLifetime(status, hdr, cc, time.Duration(h.HeuristicMax))
	hasValidator := hdr.Get("ETag") != "" || hdr.Get("Last-Modified") != ""
	if lifetime <= 0 && !hasValidator && h.StaleOnError == 0 && staleWindow("stale-if-error", cc, nil) == 0 {
		return nil, "not-reusable" // would be stale at once, with nothing to revalidate
	}
	names := varyNamesOf(hdr)
	primary := primaryKey(r)
	return &entry{
		key:          primary + secondaryKey(r, names),
		primary:      primary,
		status:       status,
		header:       storedHeader(hdr),
		body:         body,
		requestTime:  reqTime,
		responseTime: respTime,
		initialAge:   initialAge(hdr, reqTime, respTime),
		lifetime:     lifetime,
		cc:           cc,
		varyNames:    names,
		tags:         tagsOf(hdr),
		reqHeader:    replayHeader(r.Header, names),
	}, ""
}

// serveEntry writes a stored response, with Age and Cache-Status.
// Conditional and range requests are answered by http.ServeContent, as
// file_server answers them.
func (h *Handler) serveEntry(w http.ResponseWriter, r *http.Request, e *entry, outcome, status string) error {
	hdr := w.Header()
	for k, v := range e.header {
		hdr[k] = slices.Clone(v)
	}
	hdr.Set("Age", ageHeader(e.age(time.Now())))
	hdr.Set("Cache-Status", cacheName+"; "+status)
	h.m.requests[outcome].Inc()
	if e.status == http.StatusOK {
		var modtime time.Time
		if lm, err := http.ParseTime(e.header.Get("Last-Modified")); err == nil {
			modtime = lm
		}
		http.ServeContent(w, r, "", modtime, bytes.NewReader(e.body))
	} else {
		hdr.Set("Content-Length", strconv.Itoa(len(e.body)))
		w.WriteHeader(e.status)
		if r.Method != http.MethodHead {
			w.Write(e.body)
		}
	}
	if r.Method != http.MethodHead {
		h.m.bytesCache.Add(float64(len(e.body)))
	}
	return nil
}

// writeCaptured relays an answer a background fetch got but did not store.
func (h *Handler) writeCaptured(w http.ResponseWriter, r *http.Request, c *capture, status string) error {
	hdr := w.Header()
	for k, v := range storedHeader(c.header) {
		hdr[k] = v
	}
	hdr.Set("Cache-Status", cacheName+"; "+status)
	hdr.Set("Content-Length", strconv.Itoa(c.body.Len()))
	w.WriteHeader(c.status)
	if r.Method != http.MethodHead {
		w.Write(c.body.Bytes())
		h.m.bytesOrigin.Add(float64(c.body.Len()))
	}
	return nil
}

// passUnsafe forwards a request with an unsafe method and, if it
// succeeds, invalidates the URL and the ones its Location and
// Content-Location name (RFC 9111 §4.4).
func (h *Handler) passUnsafe(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	tee := newTeeWriter(w, 0, func(int, http.Header) bool { return false })
	err := next.ServeHTTP(tee, r)
	if err != nil || tee.status >= 400 || r.Method == http.MethodOptions || r.Method == http.MethodTrace {
		return err
	}
	h.store.invalidate(primaryKey(r))
	for _, f := range []string{"Location", "Content-Location"} {
		if u, perr := r.URL.Parse(tee.Header().Get(f)); perr == nil && tee.Header().Get(f) != "" {
			if u.Host == "" || u.Host == r.Host {
				h.store.invalidate(primaryKey(&http.Request{Host: r.Host, URL: u}))
			}
		}
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
