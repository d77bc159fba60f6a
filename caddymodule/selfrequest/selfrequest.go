// Package selfrequest sends a request through a Caddy server's own
// routes, from inside the server: for the work a front-end does without a
// client waiting — refreshing a cache entry, warming it, polling the
// back-end's load index. Such a request is matched, classified and
// proxied exactly like a client's (same host matchers, same priority
// rules, same TMP link), and it is its own request: nothing ties it to a
// client connection that may be gone.
package selfrequest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// Server returns the server a handler was provisioned for: Caddy's http
// app provisions each server's routes with the server in the context.
func Server(ctx context.Context) *caddyhttp.Server {
	srv, _ := ctx.Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server)
	return srv
}

// SplitURL takes "https://host/path", "host/path" or "//host/path" and
// returns the host and the request-target.
func SplitURL(raw string) (host, uri string, err error) {
	if !strings.Contains(raw, "://") {
		raw = "http://" + strings.TrimPrefix(raw, "//")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", "", err
	}
	if u.Host == "" {
		return "", "", fmt.Errorf("no host in %q", raw)
	}
	return u.Host, u.RequestURI(), nil
}

// markKey marks a request as the front-end's own. It is a context value:
// no header, cookie or address a client controls can set it.
type markKey struct{}

// Is reports whether r is a request the front-end sent itself (Do). Such
// a request is work the front-end does for everyone (a refresh, a warm, a
// poll): admission handlers let it through without giving it a visitor's
// place in the waiting room or a share of the load gate's budget.
func Is(r *http.Request) bool { return r.Context().Value(markKey{}) != nil }

// Do runs a GET for host+uri through srv, writing the answer to w. The
// request comes from loopback, is marked as the front-end's own (Is), and
// carries only the header hdr, which the caller builds from what the
// request must vary on: never a client's cookies, credentials or
// forwarding headers. ctx bounds it and carries whatever the caller's own
// handler needs to recognize it.
func Do(ctx context.Context, srv *caddyhttp.Server, host, uri string, hdr http.Header, w http.ResponseWriter) error {
	return DoAs(ctx, srv, "127.0.0.1:0", host, uri, hdr, w)
}

// DoAs is Do on behalf of a client: the request comes from remoteAddr, the
// client's, so that matchers on the client's address (remote_ip) and the
// access log see the client and never grant it loopback's trust. The edge
// side includes (esi) fetch their fragments this way.
func DoAs(ctx context.Context, srv *caddyhttp.Server, remoteAddr, host, uri string, hdr http.Header, w http.ResponseWriter) error {
	if srv == nil {
		return fmt.Errorf("no server to send %s%s through", host, uri)
	}
	ctx = context.WithValue(ctx, markKey{}, true)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+host+uri, nil)
	if err != nil {
		return err
	}
	req.Host = host
	req.RequestURI = uri
	req.RemoteAddr = remoteAddr
	if hdr != nil {
		req.Header = hdr
	}
	srv.ServeHTTP(w, req)
	return nil
}

// Discard is a ResponseWriter that keeps the header and drops the body.
type Discard struct {
	H      http.Header
	Status int
}

func (d *Discard) Header() http.Header {
	if d.H == nil {
		d.H = http.Header{}
	}
	return d.H
}
func (d *Discard) Write(p []byte) (int, error) { return len(p), nil }
func (d *Discard) WriteHeader(s int) {
	if d.Status == 0 {
		d.Status = s
	}
}

// Capture is a ResponseWriter that keeps a self-request's status, header
// and body, up to Limit bytes of body: what an ESI fragment or an edge
// function's fetch is read into. A larger body sets Over and fails the
// write that overflowed.
type Capture struct {
	H      http.Header
	Status int
	Body   bytes.Buffer
	Limit  int64
	Over   bool
}

// ErrTooLarge is the error of a write past Capture.Limit.
var ErrTooLarge = errors.New("self-request's body exceeds its limit")

func (c *Capture) Header() http.Header {
	if c.H == nil {
		c.H = http.Header{}
	}
	return c.H
}

func (c *Capture) WriteHeader(s int) {
	if c.Status == 0 && s >= 200 {
		c.Status = s
	}
}

func (c *Capture) Write(p []byte) (int, error) {
	if c.Status == 0 {
		c.Status = http.StatusOK
	}
	if int64(c.Body.Len()+len(p)) > c.Limit {
		c.Over = true
		return 0, ErrTooLarge
	}
	return c.Body.Write(p)
}

// ReadFrom takes a body handed over whole (edge_cache's hits) into the
// buffer directly: io.Copy would allocate 32 kB each time.
func (c *Capture) ReadFrom(r io.Reader) (int64, error) {
	if c.Status == 0 {
		c.Status = http.StatusOK
	}
	n, err := c.Body.ReadFrom(io.LimitReader(r, c.Limit-int64(c.Body.Len())+1))
	if int64(c.Body.Len()) > c.Limit {
		c.Over = true
		return n, ErrTooLarge
	}
	return n, err
}

// OK reports whether the capture holds a whole 2xx answer.
func (c *Capture) OK() bool { return !c.Over && c.Status >= 200 && c.Status <= 299 }
