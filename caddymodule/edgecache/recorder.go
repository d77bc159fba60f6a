package edgecache

import (
	"bytes"
	"io"
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// teeWriter passes a response through to the client while keeping a copy
// of it, up to limit bytes, for the cache. onHeader runs once, before the
// header is sent: it decides whether to keep a copy and may add fields
// (Cache-Status). A response larger than limit is passed through whole and
// not stored.
type teeWriter struct {
	*caddyhttp.ResponseWriterWrapper
	limit    int64
	onHeader func(status int, h http.Header) (keep bool)

	status   int
	wrote    bool
	keep     bool
	overflow bool
	buf      bytes.Buffer
	written  int64
}

func newTeeWriter(w http.ResponseWriter, limit int64, onHeader func(int, http.Header) bool) *teeWriter {
	return &teeWriter{ResponseWriterWrapper: &caddyhttp.ResponseWriterWrapper{ResponseWriter: w}, limit: limit, onHeader: onHeader}
}

func (t *teeWriter) WriteHeader(status int) {
	if t.wrote {
		return
	}
	if status >= 100 && status < 200 && status != http.StatusSwitchingProtocols {
		t.ResponseWriter.WriteHeader(status) // informational: pass on, wait for the final one
		return
	}
	t.wrote = true
	t.status = status
	t.keep = t.onHeader(status, t.Header())
	t.ResponseWriter.WriteHeader(status)
}

func (t *teeWriter) Write(p []byte) (int, error) {
	if !t.wrote {
		t.WriteHeader(http.StatusOK)
	}
	if t.keep && !t.overflow {
		if int64(t.buf.Len()+len(p)) > t.limit {
			t.overflow = true
			t.buf = bytes.Buffer{}
		} else {
			t.buf.Write(p)
		}
	}
	n, err := t.ResponseWriter.Write(p)
	t.written += int64(n)
	return n, err
}

// ReadFrom keeps io.Copy going through Write: the embedded wrapper's
// ReadFrom would hand the body to the client's writer directly, past
// this one.
func (t *teeWriter) ReadFrom(r io.Reader) (int64, error) {
	return io.Copy(struct{ io.Writer }{t}, r)
}

// captured reports the copy, if one was kept whole.
func (t *teeWriter) captured() ([]byte, bool) {
	if !t.wrote || !t.keep || t.overflow {
		return nil, false
	}
	return t.buf.Bytes(), true
}

// capture is a ResponseWriter that only records, for fetches no client
// waits on directly: background revalidation, refresh ahead of expiry and
// warming. It keeps at most limit body bytes and notes an overflow.
type capture struct {
	header   http.Header
	status   int
	body     bytes.Buffer
	limit    int64
	overflow bool
	at       time.Time // when the final header was written
}

func newCapture(limit int64) *capture { return &capture{header: http.Header{}, limit: limit} }

func (c *capture) Header() http.Header { return c.header }

func (c *capture) WriteHeader(status int) {
	if c.status == 0 && status >= 200 {
		c.status = status
		c.at = time.Now()
	}
}

func (c *capture) Write(p []byte) (int, error) {
	if c.status == 0 {
		c.WriteHeader(http.StatusOK)
	}
	if int64(c.body.Len()+len(p)) > c.limit {
		c.overflow = true
		return len(p), nil
	}
	return c.body.Write(p)
}

func (c *capture) Flush() {}
