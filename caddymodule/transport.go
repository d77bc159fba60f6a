package caddymodule

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"

	"github.com/conductor-edge/conductor/caddymodule/priority"
	"github.com/conductor-edge/conductor/tmptransport"
)

func init() {
	caddy.RegisterModule(Transport{})
}

// Transport is the `tmp` reverse-proxy transport: each proxied request opens
// one stream, at the request's priority, on the pooled TMP session to the
// upstream back-end, and speaks HTTP/1.1 on it. Bodies stream both ways, and
// protocol upgrades (WebSocket) pass through. Upstreams are TMP addresses of
// back-ends (`reverse_proxy be1:4433 { transport tmp }`).
type Transport struct {
	// Priority used when the request carries no conductor_priority
	// variable. Default 2.
	DefaultPriority *int `json:"default_priority,omitempty"`
	// Compress turns on zstd for both directions of each stream. Data
	// that does not compress (images, gzip'd bodies) is sent without the
	// encoder's work once a write shows it (tmptransport/zstdskip.go).
	Compress bool `json:"compress,omitempty"`
	// DialTimeout bounds opening a stream, including (re-)establishing the
	// session. Default 10s.
	DialTimeout caddy.Duration `json:"dial_timeout,omitempty"`
	// ResponseHeaderTimeout bounds the wait for the back-end's response
	// headers. Default: none.
	ResponseHeaderTimeout caddy.Duration `json:"response_header_timeout,omitempty"`
	// MaxIdleStreams bounds the streams kept open between requests, for
	// the next request at the same priority (idlestreams.go). Default 64;
	// 0 keeps none, and every request opens a stream of its own.
	MaxIdleStreams *int `json:"max_idle_streams,omitempty"`

	app     *App
	readers *sync.Pool // *bufio.Reader, for responses (streamrt.go)
	writers *sync.Pool // *bufio.Writer, for requests
	idle    *idleStreams
}

// CaddyModule returns the Caddy module information.
func (Transport) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.reverse_proxy.transport.tmp",
		New: func() caddy.Module { return new(Transport) },
	}
}

// Provision sets up the transport.
func (t *Transport) Provision(ctx caddy.Context) error {
	appIface, err := ctx.App("conductor")
	if err != nil {
		return fmt.Errorf("tmp transport: %w", err)
	}
	t.app = appIface.(*App)
	if t.DialTimeout == 0 {
		t.DialTimeout = caddy.Duration(10 * time.Second)
	}
	t.readers = &sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }}
	t.writers = &sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4096) }}
	maxIdle := defaultMaxIdleStreams
	if t.MaxIdleStreams != nil {
		maxIdle = *t.MaxIdleStreams
	}
	if maxIdle > 0 {
		t.idle = newIdleStreams(maxIdle)
	}
	return nil
}

// Cleanup closes the kept streams when the config that made the transport
// is unloaded.
func (t *Transport) Cleanup() error {
	if t.idle != nil {
		t.idle.close()
	}
	return nil
}

// Validate rejects bad configuration.
func (t *Transport) Validate() error {
	if p := t.DefaultPriority; p != nil && !priority.Valid(*p) {
		return fmt.Errorf("tmp transport: default_priority %d out of range 0..%d", *p, priority.Levels-1)
	}
	if t.MaxIdleStreams != nil && *t.MaxIdleStreams < 0 {
		return fmt.Errorf("tmp transport: max_idle_streams must not be negative")
	}
	if t.DialTimeout < 0 || t.ResponseHeaderTimeout < 0 {
		return fmt.Errorf("tmp transport: timeouts must not be negative")
	}
	return nil
}

// RoundTrip implements http.RoundTripper.
//
// Retries, all of them, and who owns each:
//   - Reaching the back-end: the session pool's tmptransport.Redialer, one
//     handshake per dial and an exponential back-off between failed ones,
//     all within dial_timeout.
//   - A request the back-end cannot have acted on, because the session it
//     met was already dead: this transport, once, on the fresh session, as
//     net/http does for a stale pooled connection. That is known at two
//     points. In dial, the stream could not open (nothing was sent, so any
//     method goes again). Here, a stateless reset answered the request (the
//     back-end restarted under a live-looking session): it may have run
//     before the restart, so only requests safe to replay go again (RFC
//     9110 §9.2.2 idempotent methods, with a body that can be re-read).
//   - Everything else: reverse_proxy's own policy (lb_retries,
//     lb_try_duration), which dial's DialErrors let it apply even to
//     non-idempotent requests, since nothing was sent.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	// reverse_proxy leaves the scheme to the transport (Caddy's own
	// HTTPTransport sets it in RoundTrip). TMP is already encrypted, so the
	// HTTP inside is plain.
	if req.URL.Scheme == "" {
		req.URL.Scheme = "http"
	}
	resp, err := t.roundTripStream(req)
	if err == nil || !errors.Is(err, tmptransport.ErrStatelessReset) || !replayable(req) || req.Context().Err() != nil {
		return resp, err
	}
	if req.GetBody != nil {
		body, berr := req.GetBody()
		if berr != nil {
			return nil, err
		}
		req = req.Clone(req.Context())
		req.Body = body
	}
	return t.roundTripStream(req)
}

func replayable(req *http.Request) bool {
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
	default:
		return false
	}
	return req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
}

// dial opens a stream at prio to the back-end at addr. Failures are DialErrors, so
// reverse_proxy may retry them on another upstream even for non-idempotent
// requests: nothing was sent.
func (t *Transport) dial(ctx context.Context, addr string, prio tmptransport.Priority) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(t.DialTimeout))
	defer cancel()
	u := t.app.upstreamFor(addr)
	for attempt := 0; ; attempt++ {
		sess, err := u.session(ctx)
		if err != nil {
			return nil, reverseproxy.NewDialError(fmt.Errorf("tmp %s: %w", addr, err))
		}
		st, err := sess.OpenStreamOptions(ctx, tmptransport.OpenStreamOptions{Priority: prio, Compress: t.Compress})
		if err == nil {
			return st, nil
		}
		// The session died between lookup and open (peer restarted):
		// the Redialer gives a fresh one on the next try.
		if attempt > 0 || sess.Err() == nil {
			return nil, reverseproxy.NewDialError(fmt.Errorf("tmp %s: open stream: %w", addr, err))
		}
	}
}

func (t *Transport) priority(ctx context.Context) tmptransport.Priority {
	def := priority.Default
	if t.DefaultPriority != nil {
		def = *t.DefaultPriority
	}
	p, _ := priority.Of(ctx, def)
	return tmptransport.Priority(p)
}

// Interface guards.
var (
	_ caddy.Provisioner  = (*Transport)(nil)
	_ caddy.Validator    = (*Transport)(nil)
	_ caddy.CleanerUpper = (*Transport)(nil)
	_ http.RoundTripper  = (*Transport)(nil)
)
