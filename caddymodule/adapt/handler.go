// Package adapt adapts what the front-end serves to each client's device
// and link (the seed: "front-end web server 601 formats and converts
// content … based on custom requests forwarded to web server 610").
//
// Two handlers, because a variant must be cached by edge_cache:
//   - `adapt`, before edge_cache, classifies each request (full, lite,
//     text) from what the client says (Save-Data, RFC 8942 client hints,
//     Accept) and what the front-end measures of its connection (TCP_INFO:
//     round trip and delivery rate), advertises Accept-CH, and tells the
//     origin the class in a request header, so the origin can render a
//     lighter page;
//   - `adapt_images`, after edge_cache, resizes and re-encodes images for
//     the class (WebP where Accept allows, JPEG otherwise), and marks the
//     variant with Vary, so edge_cache stores each image once per class.
//
// Cloudflare's Polish and Mirage, and Fastly's Image Optimizer, adapt to
// what the client says; none adapts to what the edge measures of the
// client's link, which is the signal a client on a slow link never sends.
package adapt

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/conductor-edge/conductor/caddymodule/selfrequest"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Request headers the front-end sets for the handlers after it and the
// origin. A client's own values are removed first.
const (
	ClassHeader  = "Conductor-Client-Class"
	FormatHeader = "Conductor-Image-Format"
)

// hintHeaders are the client hints asked for (Accept-CH) and varied on.
const hintHeaders = "Save-Data, ECT, RTT, Downlink, DPR, Viewport-Width, Width"

// Handler is `http.handlers.adapt`.
type Handler struct {
	Thresholds
	// Site labels this handler's metrics. Default "default".
	Site string `json:"site,omitempty"`

	m *classMetrics
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.adapt",
		New: func() caddy.Module { return new(Handler) },
	}
}

// connKey holds the client's connection in the request context: Caddy
// gives handlers no other way to it (caddyhttp.ConnCtxKey is deprecated in
// favour of Server.RegisterConnContext).
type connKey struct{}

// Provision applies defaults and asks the server for each connection.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.Thresholds.defaults()
	if h.Site == "" {
		h.Site = "default"
	}
	if srv := selfrequest.Server(ctx); srv != nil {
		srv.RegisterConnContext(func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, connKey{}, c)
		})
	}
	if err := registerMetrics(ctx); err != nil {
		return err
	}
	h.m = classMetricsFor(h.Site)
	return nil
}

// Validate checks that the classes are ordered.
func (h *Handler) Validate() error {
	if h.TextRTT < h.LiteRTT || h.TextDownlink > h.LiteDownlink {
		return fmt.Errorf("adapt: text needs a slower link than lite (text_rtt %v ≥ lite_rtt %v, text_downlink %.0f ≤ lite_downlink %.0f)",
			h.TextRTT, h.LiteRTT, h.TextDownlink, h.LiteDownlink)
	}
	return nil
}

// ServeHTTP classifies the request and passes it on with the class.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	var measured link
	if c, ok := r.Context().Value(connKey{}).(net.Conn); ok {
		measured = measure(c)
	}
	class, reason := h.classify(r.Header, measured)
	if selfrequest.Is(r) {
		// The front-end's own request (a refresh, an ESI fragment) keeps
		// the class it was given: there is no client connection to measure.
		if c := Class(r.Header.Get(ClassHeader)); c == Full || c == Lite || c == Text {
			class, reason = c, "inherited"
		}
	}
	h.m.classes[string(class)+"/"+reason].Inc()
	caddyhttp.SetVar(r.Context(), "conductor_class", string(class))
	r.Header.Set(ClassHeader, string(class))
	r.Header.Set(FormatHeader, imageFormat(r.Header.Get("Accept")))
	hdr := w.Header()
	hdr.Set("Accept-CH", hintHeaders)
	hdr.Set(ClassHeader, string(class))
	return next.ServeHTTP(&varyWriter{ResponseWriterWrapper: &caddyhttp.ResponseWriterWrapper{ResponseWriter: w}}, r)
}

// varyWriter turns the Vary on the front-end's own headers, which edge_cache
// needs, into the Vary a cache after the front-end can act on: the client
// hints and Accept that the class and format came from.
type varyWriter struct {
	*caddyhttp.ResponseWriterWrapper
	done bool
}

func (v *varyWriter) WriteHeader(status int) {
	if !v.done && status >= 200 {
		v.done = true
		rewriteVary(v.Header())
	}
	v.ResponseWriterWrapper.WriteHeader(status)
}

func (v *varyWriter) Write(p []byte) (int, error) {
	if !v.done {
		v.WriteHeader(http.StatusOK)
	}
	return v.ResponseWriterWrapper.Write(p)
}

func rewriteVary(h http.Header) {
	var out []string
	seen := map[string]bool{}
	add := func(s string) {
		if k := http.CanonicalHeaderKey(strings.TrimSpace(s)); k != "" && !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	changed := false
	for _, v := range h.Values("Vary") {
		for _, f := range strings.Split(v, ",") {
			switch http.CanonicalHeaderKey(strings.TrimSpace(f)) {
			case ClassHeader:
				changed = true
				for _, hint := range strings.Split(hintHeaders, ",") {
					add(hint)
				}
			case FormatHeader:
				changed = true
				add("Accept")
			default:
				add(f)
			}
		}
	}
	if changed {
		h["Vary"] = []string{strings.Join(out, ", ")}
	}
}

var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
