package caddymodule

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"sync"
	"sync/atomic"
	"time"
)

// roundTripStream sends a request on a stream of its own and reads the
// answer: HTTP/1.1, one request per stream, the stream closed with the
// response body.
//
// Why not net/http's Transport: with one stream per request (the
// request's own priority, no head-of-line blocking), its per-connection
// machinery (a persistConn with a read goroutine and a write goroutine,
// their buffers, the idle pool's bookkeeping) did nothing useful, as a
// connection is never reused, and it was over a quarter of the
// front-end's CPU for 1 kB responses in `conductor bench proxy`. Here a
// request without a body costs no goroutine, and the buffers are pooled.
func (t *Transport) roundTripStream(req *http.Request) (*http.Response, error) {
	st, err := t.dial(req.Context(), "tmp", req.URL.Host)
	if err != nil {
		return nil, err
	}
	return t.exchange(req, st)
}

// exchange is one request and its answer on st, which it owns.
func (t *Transport) exchange(req *http.Request, st net.Conn) (*http.Response, error) {
	ctx := req.Context()
	stop := context.AfterFunc(ctx, func() { st.Close() })
	abort := func(err error) (*http.Response, error) {
		stop()
		st.Close()
		return nil, err
	}
	// The back-end closes the stream after its response.
	req.Close = true
	var writeErr chan error
	if req.Body == nil || req.Body == http.NoBody {
		if err := t.writeRequest(req, st); err != nil {
			return abort(err)
		}
	} else {
		// The back-end may answer before it has read the whole body (and
		// a body that streams is read while the answer comes).
		writeErr = make(chan error, 1)
		go func() { writeErr <- t.writeRequest(req, st) }()
	}
	br := t.readers.Get().(*bufio.Reader)
	br.Reset(st)
	var timedOut atomic.Bool
	if d := time.Duration(t.ResponseHeaderTimeout); d > 0 {
		timer := time.AfterFunc(d, func() { timedOut.Store(true); st.Close() })
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
		sb.rc = resp.Body
		resp.Body = sb
		return resp, nil
	}
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

// streamBody is a response body: closing it closes the stream (first, so
// that an unread remainder is not drained) and returns the buffer.
type streamBody struct {
	rc   io.ReadCloser
	st   net.Conn
	stop func() bool
	br   *bufio.Reader
	pool *sync.Pool
	once sync.Once
}

func (b *streamBody) Read(p []byte) (int, error) { return b.rc.Read(p) }

func (b *streamBody) Close() error {
	b.once.Do(func() {
		b.stop()
		b.st.Close()
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
