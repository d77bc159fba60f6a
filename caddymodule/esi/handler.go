// Package esi is the `esi` handler: the front-end composes a page from
// several sources (the seed: "a composite of multiple sources from
// multiple independent web servers", "content and functionality obtained
// from web site 610 as well as content and functionality present on
// front-end 601") with Edge Side Includes, ESI 1.0 (W3C Note 2001) and the
// Edge Architecture Specification's Surrogate-Capability and
// Surrogate-Control headers.
//
// Where Varnish fetches includes one after another and Souin's go-esi
// buffers the page, this processor fetches every include in parallel from
// the moment its tag is parsed, streams the page (text before the first
// pending include goes out at once), and never fails a page for a
// fragment: src, then alt, then the try's except, then nothing, each miss
// counted.
//
// Place it before edge_cache (the directive order does): the cache then
// stores the template and each fragment under their own Cache-Control,
// and never an assembled page.
package esi

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"golang.org/x/sync/semaphore"
	"golang.org/x/time/rate"

	"github.com/conductor-edge/conductor/caddymodule/selfrequest"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Handler is `http.handlers.esi`.
type Handler struct {
	// Allow lists the hosts, besides the page's own, that includes may
	// name: "partner.example", or "*.example.com" for its subdomains. The
	// fragment is still fetched through this server's routes. An include
	// of any other host is refused (no SSRF).
	Allow selfrequest.AllowList `json:"allow,omitempty"`
	// MaxDepth bounds nested templates: a fragment that is itself ESI is
	// processed down to this depth. Default 3.
	MaxDepth int `json:"max_depth,omitempty"`
	// MaxIncludes bounds the fragments one page fetches, alts and nested
	// pages' own counted apart. Default 64.
	MaxIncludes int `json:"max_includes,omitempty"`
	// Parallel bounds the fragments one page fetches at once. Default 16.
	Parallel int `json:"parallel,omitempty"`
	// Timeout bounds each fragment's fetch. Default 5s.
	Timeout caddy.Duration `json:"timeout,omitempty"`
	// MaxBytes bounds the bytes of all of a page's fragments. Default 8 MiB.
	MaxBytes int64 `json:"max_bytes,omitempty"`
	// Site labels this handler's metrics. Default "default".
	Site string `json:"site,omitempty"`

	logger  *zap.Logger
	missLog *rate.Sometimes
	m       *siteMetrics
	bufs    *sync.Pool // copy buffers for templates handed over by ReadFrom
	codecs  *codecs
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.esi",
		New: func() caddy.Module { return new(Handler) },
	}
}

// capability is what this surrogate announces to the origin (Edge
// Architecture Specification §2.1): a device token and what it can do. An
// origin that sees it may answer with an ESI template.
const capability = `conductor="Surrogate/1.0 ESI/1.0"`

// Provision applies defaults.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	if h.MaxDepth == 0 {
		h.MaxDepth = 3
	}
	if h.MaxIncludes == 0 {
		h.MaxIncludes = 64
	}
	if h.Parallel == 0 {
		h.Parallel = 16
	}
	if h.Timeout == 0 {
		h.Timeout = caddy.Duration(5 * time.Second)
	}
	if h.MaxBytes == 0 {
		h.MaxBytes = 8 << 20
	}
	if h.Site == "" {
		h.Site = "default"
	}
	h.missLog = &rate.Sometimes{Interval: time.Second}
	h.codecs = &codecs{}
	h.bufs = &sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}
	if err := registerMetrics(ctx); err != nil {
		return err
	}
	h.m = metricsFor(h.Site)
	return nil
}

// Validate rejects limits that make no sense.
func (h *Handler) Validate() error {
	switch {
	case h.MaxDepth < 0 || h.MaxDepth > 10:
		return fmt.Errorf("esi: max_depth %d: must be 0 to 10", h.MaxDepth)
	case h.MaxIncludes < 0 || h.MaxIncludes > 1000:
		return fmt.Errorf("esi: max_includes %d: must be 1 to 1000", h.MaxIncludes)
	case h.Parallel < 0 || h.Parallel > 256:
		return fmt.Errorf("esi: parallel %d: must be 1 to 256", h.Parallel)
	case h.Timeout < 0 || h.MaxBytes < 0:
		return fmt.Errorf("esi: timeout and max_bytes must be positive")
	}
	for _, a := range h.Allow {
		if a == "" || strings.ContainsAny(a, "/ ") || strings.Count(a, "*") > 1 || (strings.Contains(a, "*") && !strings.HasPrefix(a, "*.")) {
			return fmt.Errorf("esi: allow %q: want a host, or *.domain", a)
		}
	}
	return nil
}

// ServeHTTP announces the capability to the origin and, when the response
// is an ESI template, assembles the page.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	// A client cannot speak for the surrogate.
	r.Header.Del("Surrogate-Capability")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return next.ServeHTTP(w, r)
	}
	r.Header.Set("Surrogate-Capability", capability)

	srv := selfrequest.Server(r.Context())
	ctx, shortcut := selfrequest.WithShortcutSlot(r.Context())
	r = r.WithContext(ctx)
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	base := &url.URL{Scheme: scheme, Host: r.Host, Path: r.URL.Path, RawQuery: r.URL.RawQuery}
	pw := &pageWriter{
		ResponseWriterWrapper: &caddyhttp.ResponseWriterWrapper{ResponseWriter: w},
		h:                     h,
		head:                  r.Method == http.MethodHead,
		acceptEncoding:        r.Header.Get("Accept-Encoding"),
		slow:                  slowClass(r.Header),
		newAssembly: func(out io.Writer, flush func()) *assembly {
			f := &pageFetcher{
				h: h, srv: srv, base: base, client: r.Header.Clone(), remote: r.RemoteAddr,
				depth: depthOf(r.Context()), m: h.m, sem: semaphore.NewWeighted(int64(h.Parallel)), shortcut: shortcut,
			}
			f.budget.Store(h.MaxBytes)
			return &assembly{ctx: r.Context(), page: f, out: out, flush: flush}
		},
	}
	err := next.ServeHTTP(pw, r)
	if pw.a == nil {
		return err
	}
	defer pw.a.wait()
	// A broken template stream (err) still gets what was parsed finished,
	// then the error goes to Caddy, which logs it.
	if derr := pw.endTemplate(); err == nil {
		err = derr
	}
	ferr := pw.a.finish()
	if cerr := pw.enc.Close(); ferr == nil {
		ferr = cerr
	}
	if err == nil {
		err = ferr
	}
	return err
}

// pageWriter decides, at WriteHeader, whether the response is a template;
// if it is, everything written after goes through the assembly.
type pageWriter struct {
	*caddyhttp.ResponseWriterWrapper
	h              *Handler
	head           bool
	acceptEncoding string // the client's
	slow           bool   // adapt classed the client's link lite or text
	newAssembly    func(out io.Writer, flush func()) *assembly
	a              *assembly
	enc            encoder // the page's encoding towards the client
	wroteHeader    bool

	// A compressed template is decoded on its own goroutine, fed through
	// a pipe; decoded is closed when it has parsed the last byte.
	pipe    *io.PipeWriter
	decoded chan error
}

func (pw *pageWriter) WriteHeader(status int) {
	if pw.wroteHeader || status < 200 {
		pw.ResponseWriterWrapper.WriteHeader(status) // 1xx pass; a second call is Go's to report
		return
	}
	pw.wroteHeader = true
	hdr := pw.Header()
	template := isTemplate(hdr.Values("Surrogate-Control"))
	hdr.Del("Surrogate-Control") // for surrogates only (Edge Architecture §3)
	if ce := hdr.Get("Content-Encoding"); status == http.StatusOK && template && decodable(ce) {
		// The page is assembled for this client: its length is not the
		// template's, nor are its validators, and no shared cache after
		// this one may store it.
		for _, k := range []string{"Content-Length", "ETag", "Last-Modified", "Accept-Ranges"} {
			hdr.Del(k)
		}
		hdr.Set("Cache-Control", privateCacheControl(hdr.Get("Cache-Control")))
		dropVary(hdr, "Surrogate-Capability") // the same from this surrogate, always
		hdr.Del("Content-Encoding")
		out := pageEncoding(pw.acceptEncoding)
		if out != "" {
			hdr.Set("Content-Encoding", out)
		}
		hdr.Add("Vary", "Accept-Encoding")
		pw.h.m.pages.Inc()
		if !pw.head {
			w := pw.ResponseWriterWrapper.ResponseWriter
			pw.enc = pw.h.codecs.encoder(w, out, pw.slow)
			pw.a = pw.newAssembly(pw.enc, func() {
				_ = pw.enc.Flush()
				_ = http.NewResponseController(w).Flush()
			})
			if ce != "" {
				pw.startDecoding(ce)
			}
		}
	}
	pw.ResponseWriterWrapper.WriteHeader(status)
}

func (pw *pageWriter) Write(p []byte) (int, error) {
	if !pw.wroteHeader {
		pw.WriteHeader(http.StatusOK)
	}
	if pw.a == nil {
		return pw.ResponseWriterWrapper.Write(p)
	}
	if pw.pipe != nil {
		return pw.pipe.Write(p)
	}
	if err := pw.a.write(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// startDecoding parses the template through its Content-Encoding's
// decoder, on a goroutine that ends when endTemplate closes the pipe (or
// the decoder fails, which closes the pipe on the writer's side too).
func (pw *pageWriter) startDecoding(ce string) {
	pr, pwr := io.Pipe()
	pw.pipe, pw.decoded = pwr, make(chan error, 1)
	go func() {
		dec, release, err := pw.h.codecs.decoder(pr, ce)
		if err == nil {
			buf := pw.h.bufs.Get().(*[]byte)
			for {
				n, rerr := dec.Read(*buf)
				if n > 0 {
					if err = pw.a.write((*buf)[:n]); err != nil {
						break
					}
					if len(pw.a.queue) == 0 {
						pw.a.flushIfDirty() // streaming, as FlushError does unencoded
					}
				}
				if rerr != nil {
					if rerr != io.EOF {
						err = rerr
					}
					break
				}
			}
			pw.h.bufs.Put(buf)
			release()
		}
		pr.CloseWithError(err)
		pw.decoded <- err
	}()
}

// endTemplate tells the decoder the template has ended and waits for it.
func (pw *pageWriter) endTemplate() error {
	if pw.pipe == nil {
		return nil
	}
	pw.pipe.Close()
	return <-pw.decoded
}

// ReadFrom goes through Write when assembling (the wrapper's own ReadFrom
// would hand the template straight to the client).
func (pw *pageWriter) ReadFrom(r io.Reader) (int64, error) {
	if !pw.wroteHeader {
		pw.WriteHeader(http.StatusOK)
	}
	if pw.a == nil {
		return pw.ResponseWriterWrapper.ReadFrom(r)
	}
	buf := pw.h.bufs.Get().(*[]byte)
	defer pw.h.bufs.Put(buf)
	return io.CopyBuffer(writeOnly{pw}, r, *buf)
}

// writeOnly hides a writer's ReadFrom from io.Copy.
type writeOnly struct{ io.Writer }

// FlushError, while assembling, flushes what the assembly wrote when
// nothing is pending (the template streams as it comes); otherwise the
// assembly flushes when it waits for a part.
func (pw *pageWriter) FlushError() error {
	if pw.a != nil {
		if pw.pipe == nil && len(pw.a.queue) == 0 {
			pw.a.flushIfDirty()
		}
		return nil
	}
	return http.NewResponseController(pw.ResponseWriterWrapper.ResponseWriter).Flush()
}

// isTemplate reports whether Surrogate-Control asks this surrogate for ESI
// processing: content="ESI/1.0", for every surrogate or targeted at ours
// (`;conductor`).
func isTemplate(values []string) bool {
	for _, v := range values {
		for _, d := range strings.Split(v, ",") {
			d, target, _ := strings.Cut(strings.TrimSpace(d), ";")
			if target != "" && strings.TrimSpace(target) != "conductor" {
				continue
			}
			name, val, ok := strings.Cut(d, "=")
			if ok && strings.EqualFold(strings.TrimSpace(name), "content") &&
				strings.Contains(strings.ToUpper(val), "ESI/1.0") {
				return true
			}
		}
	}
	return false
}

// dropVary removes name from the Vary header.
func dropVary(h http.Header, name string) {
	var keep []string
	for _, v := range h.Values("Vary") {
		for _, f := range strings.Split(v, ",") {
			if f = strings.TrimSpace(f); f != "" && !strings.EqualFold(f, name) {
				keep = append(keep, f)
			}
		}
	}
	h.Del("Vary")
	if len(keep) > 0 {
		h.Set("Vary", strings.Join(keep, ", "))
	}
}

// privateCacheControl keeps the template's directives for the browser, but
// makes the page private: it holds fragments (a cart, a greeting) that are
// this visitor's.
func privateCacheControl(cc string) string {
	out := []string{"private"}
	for _, d := range strings.Split(cc, ",") {
		d = strings.TrimSpace(d)
		name, _, _ := strings.Cut(strings.ToLower(d), "=")
		switch name {
		case "", "public", "private", "s-maxage", "proxy-revalidate":
			continue
		}
		out = append(out, d)
	}
	return strings.Join(out, ", ")
}

var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
