// Package fallback is the `fallback` handler: what a visitor gets when
// the origin cannot give a good answer. The seed's site owner "never
// leaves a customer staring at a dead or slow site": an origin 404 becomes
// the site's own page, an error or an unreachable origin becomes a branded
// apology (after edge_cache has had its chance to serve a stale copy:
// place edge_cache inside fallback, as the directive order does), and an
// origin slower than the route's threshold is answered at once with a page
// that waits and retries in the browser while the origin's answer is still
// fetched — and stored, if edge_cache is there, for the retry to find.
package fallback

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/conductor-edge/conductor/caddymodule/internal/promreg"
	"github.com/conductor-edge/conductor/caddymodule/pages"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Handler is `http.handlers.fallback`.
type Handler struct {
	// NotFound is the page served in place of the origin's 404: a file, or
	// a directory (or unpacked site bundle) holding 404.html.
	NotFound string `json:"not_found,omitempty"`
	// NotFoundStatus is the status it is served with. Default 404.
	NotFoundStatus int `json:"not_found_status,omitempty"`
	// ErrorPage replaces the built-in apology page (an html/template).
	ErrorPage string `json:"error_page,omitempty"`
	// Retry is the apology and substitute pages' Retry-After. Default 10s.
	Retry caddy.Duration `json:"retry,omitempty"`
	// Slow is the threshold: a GET or HEAD whose response has not started
	// after this long gets the substitute page. 0 disables.
	Slow caddy.Duration `json:"slow,omitempty"`
	// SlowPage replaces the built-in substitute (an html/template).
	SlowPage string `json:"slow_page,omitempty"`
	// SlowContinue bounds how long the origin's answer is still fetched
	// after the substitute went out. Default 30s.
	SlowContinue caddy.Duration `json:"slow_continue,omitempty"`
	// SiteName brands the built-in pages.
	SiteName string `json:"site_name,omitempty"`

	notFound  []byte
	errorTmpl *template.Template
	slowTmpl  *template.Template
	logger    *zap.Logger
	slowing   *slowFlights
}

// slowFlights are the URLs whose origin answer is still being fetched
// after a client got the substitute page. While one is, the page's own
// retries (every 2 s, from every client that got it) get the substitute at
// once instead of each sending the origin one more request: without this a
// slow origin saw its load multiplied by its slowness. Entries live as long
// as the fetch (at most SlowContinue), and there are at most maxSlowFlights.
type slowFlights struct {
	mu sync.Mutex
	m  map[string]struct{}
}

const maxSlowFlights = 10000

func (f *slowFlights) running(key string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.m[key]
	return ok
}

func (f *slowFlights) start(key string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.m[key]; ok || len(f.m) >= maxSlowFlights {
		return false
	}
	f.m[key] = struct{}{}
	return true
}

func (f *slowFlights) end(key string) {
	f.mu.Lock()
	delete(f.m, key)
	f.mu.Unlock()
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.fallback",
		New: func() caddy.Module { return new(Handler) },
	}
}

var substitutes = promreg.CounterVec("fallback", "served_total",
	"Pages served in place of the origin's, by kind: not_found, apology, slow.",
	"kind")

// Provision reads the pages, so a missing file fails the config load.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	if h.NotFoundStatus == 0 {
		h.NotFoundStatus = http.StatusNotFound
	}
	if h.Retry == 0 {
		h.Retry = caddy.Duration(10 * time.Second)
	}
	h.slowing = &slowFlights{m: map[string]struct{}{}}
	if h.SlowContinue == 0 {
		h.SlowContinue = caddy.Duration(30 * time.Second)
	}
	if h.SiteName == "" {
		h.SiteName = "This site"
	}
	if h.NotFound != "" {
		path := h.NotFound
		if st, err := os.Stat(path); err == nil && st.IsDir() {
			path = filepath.Join(path, "404.html")
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("fallback not_found: %v", err)
		}
		h.notFound = b
	}
	var err error
	if h.ErrorPage != "" {
		if h.errorTmpl, err = pages.Load(h.ErrorPage); err != nil {
			return err
		}
	}
	if h.SlowPage != "" {
		if h.slowTmpl, err = pages.Load(h.SlowPage); err != nil {
			return err
		}
	}
	if err := promreg.Register(ctx, substitutes); err != nil {
		return err
	}
	return nil
}

// Validate checks the status.
func (h *Handler) Validate() error {
	if h.NotFoundStatus < 200 || h.NotFoundStatus > 599 {
		return fmt.Errorf("fallback: not_found status %d out of range", h.NotFoundStatus)
	}
	return nil
}

// ServeHTTP passes the request on and replaces what should not reach the
// visitor.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	iw := &interceptWriter{ResponseWriterWrapper: &caddyhttp.ResponseWriterWrapper{ResponseWriter: w}, h: h}
	var err error
	if h.Slow > 0 && (r.Method == http.MethodGet || r.Method == http.MethodHead) && r.Header.Get("Upgrade") == "" {
		if h.slowing.running(slowKey(r)) {
			// The origin is still working on this URL for an earlier
			// client: this one (often that client's own retry) waits
			// with it instead of asking again.
			substitutes.WithLabelValues("slow").Inc()
			return h.writeSlow(w, r)
		}
		var substituted bool
		substituted, err = h.serveWithDeadline(iw, r, next)
		if substituted {
			return nil
		}
	} else {
		err = next.ServeHTTP(iw, r)
	}
	return h.finish(iw, r, err)
}

// finish writes the replacement page, if the response was intercepted or
// the origin failed before any of it was sent.
func (h *Handler) finish(iw *interceptWriter, r *http.Request, err error) error {
	if err != nil && !iw.started() {
		status := http.StatusBadGateway
		var he caddyhttp.HandlerError
		if errors.As(err, &he) && he.StatusCode != 0 {
			status = he.StatusCode
		}
		if status == http.StatusNotFound && h.notFound != nil {
			return h.writeNotFound(iw.ResponseWriter, r)
		}
		if status >= 500 {
			h.logger.Warn("origin failed; apology page served", zap.String("uri", r.RequestURI), zap.Error(err))
			return h.writeApology(iw.ResponseWriter, r)
		}
		return err
	}
	switch iw.intercepted {
	case http.StatusNotFound:
		return h.writeNotFound(iw.ResponseWriter, r)
	case 0:
		return err
	default:
		h.logger.Warn("origin answered an error; apology page served", zap.String("uri", r.RequestURI), zap.Int("status", iw.intercepted))
		return h.writeApology(iw.ResponseWriter, r)
	}
}

func (h *Handler) writeNotFound(w http.ResponseWriter, r *http.Request) error {
	substitutes.WithLabelValues("not_found").Inc()
	hdr := w.Header()
	hdr.Set("Content-Type", "text/html; charset=utf-8")
	hdr.Set("Content-Length", strconv.Itoa(len(h.notFound)))
	hdr.Set("Conductor-Substitute", "not_found")
	w.WriteHeader(h.NotFoundStatus)
	if r.Method != http.MethodHead {
		_, err := w.Write(h.notFound)
		return err
	}
	return nil
}

func (h *Handler) writeApology(w http.ResponseWriter, r *http.Request) error {
	substitutes.WithLabelValues("apology").Inc()
	return pages.Write(w, r, pages.Apology, h.errorTmpl, http.StatusServiceUnavailable,
		pages.Data{Site: h.SiteName, RefreshSeconds: int(time.Duration(h.Retry).Seconds())})
}

// serveWithDeadline runs the rest of the chain in a goroutine. If its
// response starts before the threshold, it goes to the client as usual;
// if not, the client gets the substitute at once, and the chain goes on
// (detached from the client, bounded by SlowContinue) writing to nowhere,
// so an edge_cache further in can still store the answer for the retry.
func (h *Handler) serveWithDeadline(iw *interceptWriter, r *http.Request, next caddyhttp.Handler) (bool, error) {
	gate := &deadlineGate{started: make(chan struct{})}
	iw.gate = gate
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), time.Duration(h.SlowContinue))
	done := make(chan error, 1)
	go func() {
		defer cancel()
		done <- next.ServeHTTP(iw, r.WithContext(ctx))
	}()
	t := time.NewTimer(time.Duration(h.Slow))
	defer t.Stop()
	select {
	case err := <-done:
		return false, err
	case <-gate.started:
		// The response began in time: wait for it to finish, unless the
		// client leaves.
		select {
		case err := <-done:
			return false, err
		case <-r.Context().Done():
			cancel()
			return false, <-done
		}
	case <-r.Context().Done():
		cancel()
		return false, <-done
	case <-t.C:
	}
	if !gate.abandon() {
		// The response started just now; it is the client's after all.
		return false, <-done
	}
	if key := slowKey(r); h.slowing.start(key) {
		go func() {
			<-done // bounded by SlowContinue
			h.slowing.end(key)
		}()
	}
	substitutes.WithLabelValues("slow").Inc()
	return true, h.writeSlow(iw.ResponseWriter, r)
}

func (h *Handler) writeSlow(w http.ResponseWriter, r *http.Request) error {
	return pages.Write(w, r, pages.Slow, h.slowTmpl, http.StatusServiceUnavailable,
		pages.Data{Site: h.SiteName, RefreshSeconds: 2})
}

// slowKey names the resource a slow fetch is for.
func slowKey(r *http.Request) string { return r.Host + r.URL.RequestURI() }

// deadlineGate decides, once, whether the origin's response or the
// substitute goes to the client.
type deadlineGate struct {
	mu        sync.Mutex
	started   chan struct{}
	committed bool // the origin's response is going to the client
	abandoned bool // the substitute went; the origin's response goes nowhere
}

// begin is called as the origin's response starts; false means it is too late.
func (g *deadlineGate) begin() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.abandoned {
		return false
	}
	if !g.committed {
		g.committed = true
		close(g.started)
	}
	return true
}

func (g *deadlineGate) abandon() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.committed {
		return false
	}
	g.abandoned = true
	return true
}

// interceptWriter holds back the origin's 404 and 5xx responses (their
// bodies are dropped; finish writes the replacement), and routes a late
// response to nowhere once the substitute has gone out. Until the origin's
// response starts, its header fields go to a map of their own: a
// substitute may be written to the client's map meanwhile, from another
// goroutine, and an intercepted response's fields must not leak into the
// replacement.
type interceptWriter struct {
	*caddyhttp.ResponseWriterWrapper
	h           *Handler
	gate        *deadlineGate
	private     http.Header
	wrote       bool // the origin's final header was written (here)
	passed      bool // ... and passed on to the client
	intercepted int
	dropped     bool
}

func (iw *interceptWriter) started() bool { return iw.wrote }

func (iw *interceptWriter) Header() http.Header {
	if iw.passed {
		return iw.ResponseWriterWrapper.Header()
	}
	if iw.private == nil {
		iw.private = http.Header{}
	}
	return iw.private
}

func (iw *interceptWriter) WriteHeader(status int) {
	if iw.wrote || iw.dropped {
		return
	}
	if status < 200 && status != http.StatusSwitchingProtocols {
		if iw.gate == nil || iw.gate.begin() {
			iw.ResponseWriterWrapper.WriteHeader(status)
		}
		return
	}
	if iw.gate != nil && !iw.gate.begin() {
		iw.dropped = true
		return
	}
	iw.wrote = true
	if (status == http.StatusNotFound && iw.h.notFound != nil) || status >= 500 {
		iw.intercepted = status
		return
	}
	dst := iw.ResponseWriterWrapper.Header()
	for k, v := range iw.private {
		dst[k] = v
	}
	iw.passed = true
	iw.ResponseWriterWrapper.WriteHeader(status)
}

func (iw *interceptWriter) Write(b []byte) (int, error) {
	if !iw.wrote && !iw.dropped {
		iw.WriteHeader(http.StatusOK)
	}
	if !iw.passed {
		return len(b), nil
	}
	return iw.ResponseWriterWrapper.Write(b)
}

// ReadFrom keeps io.Copy going through Write: the embedded wrapper's
// ReadFrom would hand the body to the client's writer directly, past
// this one.
func (iw *interceptWriter) ReadFrom(r io.Reader) (int64, error) {
	return io.Copy(struct{ io.Writer }{iw}, r)
}

func (iw *interceptWriter) Flush() {
	if !iw.wrote && !iw.dropped {
		iw.WriteHeader(http.StatusOK)
	}
	if iw.passed {
		http.NewResponseController(iw.ResponseWriterWrapper).Flush()
	}
}

var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
