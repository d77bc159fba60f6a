package edgecache

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/conductor-edge/conductor/caddymodule/selfrequest"
)

// Background fetches: revalidation for stale-while-revalidate and for
// clients that wait with a timeout, refresh of hot entries ahead of
// expiry, and warming at start. None of them is tied to a client's
// request: Souin's revalidation dies with the client's context
// (souin#684, #699), so here each fetch is a request of its own, built
// fresh and run through the same Caddy server and routes as a client's,
// under a context the handler owns (cancelled only by Cleanup). When the
// request reaches this handler, the handler recognizes its job in the
// context and sends it to the next handler with the job's recorder.
const (
	kindRevalidate = "revalidate"
	kindRefresh    = "refresh"
	kindWarm       = "warm"
)

type jobCtxKey struct{}

// job is one background fetch, carried in the synthesized request's
// context to the handler.
type job struct {
	h       *Handler
	kind    string
	old     *entry // the entry being revalidated; nil for warming
	rec     *capture
	reached atomic.Bool
	req     *http.Request // as it reached the handler
	reqTime time.Time
	err     error
}

// bgFlight is a background fetch's outcome, shared by every client
// waiting on it.
type bgFlight struct {
	done   chan struct{}
	entry  *entry   // stored: a new response, or the old one freshened by a 304
	status int      // the origin's status; 0 if it never answered
	resp   *capture // the origin's answer when it was not stored
	err    error
}

// bgFlights coalesces background fetches by hand rather than with
// golang.org/x/sync/singleflight: every caller must be able to start a
// flight without waiting for it (stale-while-revalidate, refresh-ahead),
// and the handler's WaitGroup must own each flight's goroutine so that
// Cleanup waits for it; singleflight starts its own goroutine for DoChan,
// which no WaitGroup of ours can count before it runs.
type bgFlights struct {
	mu sync.Mutex
	m  map[string]*bgFlight
}

// startBackground starts a background fetch of host+uri, or joins the one
// in flight for the same entry.
func (h *Handler) startBackground(kind, host, uri string, reqHeader http.Header, old *entry) *bgFlight {
	key := host + uri
	if old != nil {
		key = old.key
	}
	h.bg.mu.Lock()
	if fl, ok := h.bg.m[key]; ok {
		h.bg.mu.Unlock()
		return fl
	}
	fl := &bgFlight{done: make(chan struct{})}
	h.bg.m[key] = fl
	h.wg.Add(1)
	h.bg.mu.Unlock()

	var vary []string
	if old != nil {
		vary = old.varyNames
	}
	hdr := replayHeader(reqHeader, vary)
	hdr.Set("User-Agent", "conductor-edge-cache/"+kind)
	go func() {
		defer h.wg.Done()
		h.runBackground(fl, kind, host, uri, hdr, old)
		h.bg.mu.Lock()
		delete(h.bg.m, key)
		h.bg.mu.Unlock()
		close(fl.done)
	}()
	return fl
}

func (h *Handler) runBackground(fl *bgFlight, kind, host, uri string, hdr http.Header, old *entry) {
	srv := h.srv.Load()
	if srv == nil {
		fl.err = errors.New("no server known yet to send background requests through")
		return
	}
	j := &job{h: h, kind: kind, old: old, rec: newCapture(h.MaxEntrySize), reqTime: time.Now()}
	ctx, cancel := context.WithTimeout(h.bgCtx, time.Duration(h.BackgroundTimeout))
	defer cancel()
	ctx = context.WithValue(ctx, jobCtxKey{}, j)
	if err := selfrequest.Do(ctx, srv, host, uri, hdr, &selfrequest.Discard{}); err != nil {
		fl.err = err
		return
	}

	switch {
	case !j.reached.Load():
		fl.err = fmt.Errorf("background %s of %s did not reach the cache (does the route still match it?)", kind, host+uri)
	case j.rec.status == 0:
		fl.err = j.err
		if fl.err == nil {
			fl.err = errors.New("origin gave no answer")
		}
	default:
		fl.status = j.rec.status
		fl.err = j.err
		h.storeBackground(fl, j)
	}
	if fl.err != nil {
		h.logger.Debug("background fetch failed", zap.String("kind", kind), zap.String("url", host+uri), zap.Error(fl.err))
	}
}

// storeBackground stores what a background fetch got: a 304 freshens the
// old entry (RFC 9111 §4.3.4), a storable response replaces it.
func (h *Handler) storeBackground(fl *bgFlight, j *job) {
	respTime := j.rec.at
	if j.rec.status == http.StatusNotModified && j.old != nil {
		fl.entry = freshen(j.old, j.rec.header, j.reqTime, respTime, time.Duration(h.HeuristicMax))
		h.store.put(fl.entry)
		return
	}
	if j.rec.status >= 500 || j.rec.overflow {
		fl.resp = j.rec
		return
	}
	e, _ := h.makeEntry(j.req, nil, j.rec.status, j.rec.header, j.rec.body.Bytes(), j.reqTime, respTime)
	if e == nil {
		fl.resp = j.rec
		if j.old != nil {
			// The origin no longer lets this be stored (§4.4's spirit):
			// drop the old copy rather than serve it again.
			h.store.purgeKey(j.old.key, false)
		}
		return
	}
	h.store.put(e)
	fl.entry = e
}

// freshen is the stored entry updated with a 304's header fields.
func freshen(old *entry, h304 http.Header, reqTime, respTime time.Time, heuristicMax time.Duration) *entry {
	hdr := old.header.Clone()
	for k, v := range storedHeader(h304) {
		switch k {
		case "Content-Length", "Content-Encoding", "Content-Range", "Content-Type":
			continue // §3.2: these describe the stored body, not the 304's
		}
		hdr[k] = v
	}
	cc := parseCacheControl(hdr)
	return &entry{
		key: old.key, primary: old.primary, status: old.status, header: hdr, body: old.body,
		requestTime: reqTime, responseTime: respTime, initialAge: initialAge(hdr, reqTime, respTime),
		lifetime: freshnessLifetime(old.status, hdr, cc, heuristicMax), cc: cc,
		varyNames: old.varyNames, tags: tagsOf(hdr), reqHeader: old.reqHeader,
	}
}

// runJob is the handler's part of a background fetch: send the job's
// request on, conditional when there is something to revalidate.
func (h *Handler) runJob(j *job, r *http.Request, next caddyhttp.Handler) error {
	if j.old != nil {
		if etag := j.old.header.Get("ETag"); etag != "" {
			r.Header.Set("If-None-Match", etag)
		}
		if lm := j.old.header.Get("Last-Modified"); lm != "" {
			r.Header.Set("If-Modified-Since", lm)
		}
	}
	j.req = r
	h.m.fetches[j.kind].Inc()
	j.err = next.ServeHTTP(j.rec, r)
	return j.err
}

// maybeRefreshAhead refreshes a hot entry in the background once most of
// its freshness has passed, so its next readers find it fresh.
func (h *Handler) maybeRefreshAhead(r *http.Request, e *entry, now time.Time) {
	hits := e.hits.Add(1)
	if h.RefreshAhead <= 0 || e.lifetime <= 0 || hits < h.HotHits {
		return
	}
	if e.age(now) >= time.Duration(float64(e.lifetime)*h.RefreshAhead) {
		h.startBackground(kindRefresh, r.Host, r.URL.RequestURI(), r.Header, e)
	}
}

// warmAtStart fetches the Warm URLs once this config is running, through
// the server the http app provisioned this handler for.
func (h *Handler) warmAtStart() {
	defer h.wg.Done()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	// The config has started once it is the active one. Caddy wraps the
	// config's context per server, so compare their Done channels, which
	// the wrapping shares.
	for active := caddy.ActiveContext(); active.Context == nil || active.Done() != h.ctx.Done(); active = caddy.ActiveContext() {
		select {
		case <-h.bgCtx.Done():
			return
		case <-tick.C:
		}
	}
	if h.srv.Load() == nil {
		h.logger.Error("warming: this handler is not inside an HTTP server")
		return
	}
	for _, raw := range h.Warm {
		host, uri, err := selfrequest.SplitURL(raw)
		if err != nil {
			h.logger.Error("warming", zap.String("url", raw), zap.Error(err))
			continue
		}
		fl := h.startBackground(kindWarm, host, uri, http.Header{"User-Agent": {"conductor-edge-cache/warm"}}, nil)
		select {
		case <-fl.done:
		case <-h.bgCtx.Done():
			return
		}
		if fl.entry != nil {
			h.logger.Info("warmed", zap.String("url", raw), zap.Int("status", fl.status))
		} else {
			h.logger.Warn("warming did not store", zap.String("url", raw), zap.Int("status", fl.status), zap.Error(fl.err))
		}
	}
}
