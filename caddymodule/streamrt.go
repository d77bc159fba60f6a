package caddymodule

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"sync"
	"sync/atomic"
	"time"
)

// roundTripStream sends a request on a stream and reads the answer, in
// HTTP/1.1. The stream is a kept one (idlestreams.go) for a request
// without a body and safe to repeat, or else a fresh one at the request's
// priority; after a clean exchange it is kept for the next request.
//
// Why not net/http's Transport: its per-connection machinery (a
// persistConn with a read goroutine and a write goroutine, their buffers,
// the idle pool's bookkeeping) was over a quarter of the front-end's CPU
// for 1 kB responses in `conductor bench proxy`, when each request had a
// stream of its own. Here a request without a body costs no goroutine,
// and the buffers are pooled.
func (t *Transport) roundTripStream(req *http.Request) (*http.Response, error) {
	key := idleKey{addr: req.URL.Host, prio: t.priority(req.Context())}
	keep := func(st net.Conn) bool { return t.idle != nil && t.idle.put(key, st) }
	if t.idle != nil && !req.Close && (req.Body == nil || req.Body == http.NoBody) && replayable(req) {
		for st := t.idle.get(key); st != nil; st = t.idle.get(key) {
			resp, err := t.exchange(req, st, true, keep)
			if !errors.Is(err, errStaleStream) {
				return resp, err
			}
			// The back-end closed the kept stream before it read the
			// request: nothing was done, and the request goes again.
		}
	}
	st, err := t.dial(req.Context(), key.addr, key.prio)
	if err != nil {
		return nil, err
	}
	return t.exchange(req, st, false, keep)
}

// errStaleStream: a kept stream ended before any of its answer came, as
// an idle HTTP/1.1 connection does when the server closes it first. Only
// requests safe to repeat are sent on kept streams, so it is sent again.
var errStaleStream = errors.New("tmp: kept stream closed by the back-end")

// exchange is one request and its answer on st, which it owns. reused says
// st carried an earlier exchange. When the answer has been read to its end
// and both sides allow it, keep is offered the stream; otherwise (or if
// keep declines) the stream is closed.
func (t *Transport) exchange(req *http.Request, st net.Conn, reused bool, keep func(net.Conn) bool) (*http.Response, error) {
	ctx := req.Context()
	stop := context.AfterFunc(ctx, func() { st.Close() })
	abort := func(err error) (*http.Response, error) {
		stop()
		st.Close()
		return nil, err
	}
	var writeErr chan error
	if req.Body == nil || req.Body == http.NoBody {
		if err := t.writeRequest(req, st); err != nil {
			if reused && ctx.Err() == nil {
				err = fmt.Errorf("%w: %w", errStaleStream, err)
			}
			return abort(err)
		}
	} else {
		// A stream that carried a body is not kept: net/http's server
		// reads up to 256 kB of an unread body before it answers a
		// request that lets it keep the connection, and an early answer
		// (413 to a body still coming) would wait for it.
		req.Close = true
		// The back-end may answer before it has read the whole body (and
		// a body that streams is read while the answer comes).
		writeErr = make(chan error, 1)
		go func() { writeErr <- t.writeRequest(req, st) }()
	}
	var src io.Reader = st
	var got *countingReader
	if reused {
		got = &countingReader{r: st}
		src = got
	}
	br := t.readers.Get().(*bufio.Reader)
	br.Reset(src)
	var timedOut atomic.Bool
	var timer *time.Timer
	if d := time.Duration(t.ResponseHeaderTimeout); d > 0 {
		timer = time.AfterFunc(d, func() { timedOut.Store(true); st.Close() })
		defer timer.Stop()
	}
	for {
		resp, err := http.ReadResponse(br, req)
		if err != nil {
			br.Reset(nil)
			t.readers.Put(br)
			switch {
			case timedOut.Load():
				err = errors.New("tmp: timeout awaiting response headers")
			case reused && got.n == 0 && ctx.Err() == nil:
				err = fmt.Errorf("%w: %w", errStaleStream, err)
			case writeErr != nil:
				select {
				case werr := <-writeErr:
					if werr != nil {
						err = werr
					}
				default:
				}
			}
			return abort(err)
		}
		if resp.StatusCode >= 100 && resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
			// 100 Continue, 103 Early Hints: passed on, then the answer.
			if trace := httptrace.ContextClientTrace(ctx); trace != nil && trace.Got1xxResponse != nil {
				if err := trace.Got1xxResponse(resp.StatusCode, textproto.MIMEHeader(resp.Header)); err != nil {
					br.Reset(nil)
					t.readers.Put(br)
					return abort(err)
				}
			}
			continue
		}
		sb := &streamBody{st: st, stop: stop, br: br, pool: t.readers}
		if resp.StatusCode == http.StatusSwitchingProtocols {
			// A protocol upgrade (WebSocket): reverse_proxy wants the
			// connection, read side first from what is buffered.
			sb.rc = io.NopCloser(br)
			resp.Body = &upgradedStream{streamBody: sb}
			return resp, nil
		}
		if !req.Close && !resp.Close && (timer == nil || timer.Stop()) {
			// A bodiless request (one with a body set req.Close), all
			// sent: kept only if the answer is read to its end and
			// nothing more came (streamBody.Close).
			sb.keep = keep
			sb.eof = resp.Body == http.NoBody
		}
		sb.rc = resp.Body
		resp.Body = sb
		return resp, nil
	}
}

// countingReader counts the bytes read through it: a kept stream that
// gave none of its answer can be told from one that failed midway.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// writeRequest writes req on the stream through a pooled buffer.
func (t *Transport) writeRequest(req *http.Request, st net.Conn) error {
	bw := t.writers.Get().(*bufio.Writer)
	bw.Reset(st)
	err := req.Write(bw)
	if err == nil {
		err = bw.Flush()
	}
	bw.Reset(nil)
	t.writers.Put(bw)
	return err
}

// streamBody is a response body. Closing it keeps the stream for another
// exchange if the answer was read to its end; otherwise it closes the
// stream (first, so that an unread remainder is not drained). Either way
// the buffer goes back to its pool.
type streamBody struct {
	rc   io.ReadCloser
	st   net.Conn
	stop func() bool
	br   *bufio.Reader
	pool *sync.Pool
	once sync.Once

	keep func(net.Conn) bool // nil: never kept
	eof  bool
}

func (b *streamBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

func (b *streamBody) Close() error {
	b.once.Do(func() {
		// stop reports false if the request's context already closed
		// the stream.
		live := b.stop()
		kept := live && b.keep != nil && b.eof && b.br.Buffered() == 0 && b.keep(b.st)
		if !kept {
			b.st.Close()
		}
		b.rc.Close()
		b.br.Reset(nil)
		b.pool.Put(b.br)
	})
	return nil
}

// upgradedStream is the body of a 101 answer: the stream itself.
type upgradedStream struct{ *streamBody }

func (u *upgradedStream) Write(p []byte) (int, error) { return u.st.Write(p) }

var _ io.ReadWriteCloser = (*upgradedStream)(nil)
