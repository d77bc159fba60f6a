package esi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"golang.org/x/sync/semaphore"

	"github.com/conductor-edge/conductor/caddymodule/selfrequest"
)

// pageFetcher fetches one page's fragments. Every fragment goes through
// the front-end's own server (selfrequest.DoAs), exactly as a client's
// request for it would: the same routes, edge_cache under its own
// Cache-Control, and the site's upstream over TMP. So "multiple
// independent web servers" (the seed) are whatever sites the front-end
// serves, and no include can reach anything a client could not.
type pageFetcher struct {
	h      *Handler
	srv    *caddyhttp.Server
	base   *url.URL    // the page's URL, that relative srcs resolve against
	client http.Header // the page request's header
	remote string      // the client's address
	depth  int         // this page's include depth (0: a client's page)
	m      *siteMetrics

	shortcut func() selfrequest.Shortcut // edge_cache's, when it offered one
	sem      *semaphore.Weighted         // fragments fetched at once
	includes atomic.Int64                // includes started
	budget   atomic.Int64                // fragment bytes the page may still take
}

// Why an include was not used.
var (
	errRefused  = selfrequest.ErrRefused
	errLimit    = errors.New("too many includes")
	errDepth    = errors.New("includes nested too deep")
	errTooLarge = errors.New("fragment exceeds the page's byte limit")
	errTimeout  = errors.New("fragment timed out")
)

// cached answers an include at once from a fresh fragment the cache below
// holds (selfrequest.Shortcut), without a pass through the server; false
// sends it the full way.
func (f *pageFetcher) cached(inc *include) ([]byte, bool) {
	var sc selfrequest.Shortcut
	if f.shortcut != nil {
		sc = f.shortcut()
	}
	if sc == nil || f.depth >= f.h.MaxDepth {
		return nil, false
	}
	u, err := f.resolve(inc.src)
	if err != nil {
		return nil, false
	}
	body, ok := sc(u.Host, u.RequestURI(), f.header(u))
	if !ok || f.includes.Add(1) > int64(f.h.MaxIncludes) || f.budget.Add(-int64(len(body))) < 0 {
		return nil, false
	}
	f.m.includes["src"].Inc()
	f.m.shortcuts.Inc()
	return body, true
}

// include resolves an esi:include: its src, else its alt, else nothing.
// ok is false when it came to nothing: that is a miss, counted, and the
// page goes on without it.
func (f *pageFetcher) include(ctx context.Context, inc *include) ([]byte, bool) {
	body, err := f.fetch(ctx, inc.src)
	if err == nil {
		f.m.includes["src"].Inc()
		return body, true
	}
	f.logMiss(inc.src, err)
	if inc.alt != "" {
		if body, aerr := f.fetch(ctx, inc.alt); aerr == nil {
			f.m.includes["alt"].Inc()
			return body, true
		} else {
			f.logMiss(inc.alt, aerr)
		}
	}
	f.m.includes["miss"].Inc()
	return nil, false
}

func (f *pageFetcher) logMiss(src string, err error) {
	switch {
	case errors.Is(err, errRefused):
		f.m.refused.Inc()
	case errors.Is(err, errTimeout):
		f.m.timeouts.Inc()
	}
	f.h.missLog.Do(func() {
		f.h.logger.Warn("esi include failed (more are counted in conductor_esi_includes_total, logged at most once a second)",
			zap.String("page", f.base.String()), zap.String("src", src), zap.Error(err))
	})
}

// fetch gets one fragment through the front-end's own routes.
func (f *pageFetcher) fetch(ctx context.Context, src string) ([]byte, error) {
	if f.includes.Add(1) > int64(f.h.MaxIncludes) {
		return nil, errLimit
	}
	if f.depth >= f.h.MaxDepth {
		return nil, errDepth
	}
	u, err := f.resolve(src)
	if err != nil {
		return nil, err
	}
	if err := f.sem.Acquire(ctx, 1); err != nil {
		return nil, err
	}
	defer f.sem.Release(1)
	fctx, cancel := context.WithTimeout(withDepth(ctx, f.depth+1), time.Duration(f.h.Timeout))
	defer cancel()
	w := &selfrequest.Capture{Limit: f.budget.Load()}
	start := time.Now()
	err = selfrequest.DoAs(fctx, f.srv, f.remote, u.Host, u.RequestURI(), f.header(u), w)
	f.m.duration.Observe(time.Since(start).Seconds())
	switch {
	case err != nil:
		return nil, err
	case fctx.Err() != nil && ctx.Err() == nil:
		return nil, errTimeout
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case w.Over:
		return nil, errTooLarge
	case !w.OK():
		return nil, fmt.Errorf("status %d", w.Status)
	}
	if f.budget.Add(-int64(w.Body.Len())) < 0 {
		return nil, errTooLarge
	}
	return w.Body.Bytes(), nil
}

// resolve makes src absolute against the page and checks that its host
// may be fetched: the page's own host, or one of the allow-list's.
func (f *pageFetcher) resolve(src string) (*url.URL, error) {
	return selfrequest.Target(f.base, src, f.h.Allow)
}

// header is what a fragment request carries. The client's credentials
// (Cookie, Authorization) go only to the page's own host: an include of a
// partner's fragment must not hand it the visitor's session.
func (f *pageFetcher) header(u *url.URL) http.Header {
	h := http.Header{}
	// What the page's answer may vary on (its language, its client, and
	// the class adapt gave it), so that each fragment varies alike.
	for _, k := range []string{"Accept-Language", "User-Agent", "Accept", "Conductor-Client-Class", "Conductor-Image-Format"} {
		if v := f.client.Values(k); len(v) > 0 {
			h[k] = v
		}
	}
	if strings.EqualFold(u.Host, f.base.Host) {
		for _, k := range []string{"Cookie", "Authorization"} {
			if v := f.client.Values(k); len(v) > 0 {
				h[k] = v
			}
		}
	}
	h.Set("Surrogate-Capability", capability)
	return h
}

// depthKey carries how deep in includes a request is: a fragment that is
// itself an ESI template is processed too, down to MaxDepth.
type depthKey struct{}

func withDepth(ctx context.Context, d int) context.Context {
	return context.WithValue(ctx, depthKey{}, d)
}

func depthOf(ctx context.Context) int {
	d, _ := ctx.Value(depthKey{}).(int)
	return d
}
