package caddymodule

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// keepServer is an HTTP/1.1 server on loopback that counts the
// connections it accepted: each stands for a stream the back-end served.
func keepServer(t *testing.T, idle time.Duration, h http.HandlerFunc) (tr *Transport, dial func() net.Conn, conns *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conns = new(atomic.Int32)
	srv := &http.Server{Handler: h, IdleTimeout: idle, ConnState: func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	tr = &Transport{idle: newIdleStreams(4)}
	tr.readers = &sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }}
	tr.writers = &sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4096) }}
	t.Cleanup(func() { tr.idle.close() })
	return tr, func() net.Conn {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		return c
	}, conns
}

// exchangeKept runs one exchange as roundTripStream does: on a kept
// stream if there is one, else on a fresh one, offering it back after.
func exchangeKept(tr *Transport, dial func() net.Conn, req *http.Request) (*http.Response, error) {
	key := idleKey{addr: req.URL.Host}
	keep := func(c net.Conn) bool { return tr.idle.put(key, c) }
	if req.Body == nil {
		for c := tr.idle.get(key); c != nil; c = tr.idle.get(key) {
			resp, err := tr.exchange(req, c, true, keep)
			if !errors.Is(err, errStaleStream) {
				return resp, err
			}
		}
	}
	return tr.exchange(req, dial(), false, keep)
}

// A stream whose answer was read to its end serves the next request, as an
// HTTP/1.1 connection does with keep-alive; a stream is not kept when its
// answer was left unread, when the back-end said Connection: close, or
// when the request had a body.
func TestStreamKeptForNextRequest(t *testing.T) {
	tr, dial, conns := keepServer(t, 0, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/close":
			w.Header().Set("Connection", "close")
		case "/big":
			w.Write([]byte(strings.Repeat("x", 64<<10)))
			return
		case "/early":
			w.WriteHeader(http.StatusRequestEntityTooLarge)
			return
		}
		w.Write([]byte("hello"))
	})
	do := func(method, path string, body io.Reader, read bool) {
		t.Helper()
		req, _ := http.NewRequest(method, "http://backend"+path, body)
		resp, err := exchangeKept(tr, dial, req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		if read {
			io.Copy(io.Discard, resp.Body)
		}
		resp.Body.Close()
	}
	for range 5 {
		do("GET", "/", nil, true)
	}
	do("HEAD", "/", nil, false) // no body to read: kept all the same
	if n := conns.Load(); n != 1 {
		t.Fatalf("six requests in turn took %d streams, want 1", n)
	}
	do("GET", "/big", nil, false) // answer not read: the stream goes
	do("GET", "/", nil, true)
	if n := conns.Load(); n != 2 {
		t.Fatalf("after an unread answer: %d streams, want 2", n)
	}
	do("GET", "/close", nil, true) // the back-end's Connection: close
	do("GET", "/", nil, true)
	if n := conns.Load(); n != 3 {
		t.Fatalf("after Connection: close: %d streams, want 3", n)
	}
	// An answer that came while the body was still going out.
	pr, pw := io.Pipe()
	defer pw.Close()
	go pw.Write([]byte("start of an endless body"))
	do("POST", "/early", pr, true)
	do("GET", "/", nil, true)
	if n := conns.Load(); n != 4 {
		t.Fatalf("after an early answer: %d streams, want 4", n)
	}
	// A request with a body closes its stream with the answer, even sent
	// whole: the back-end must not hold the answer to read the body first.
	do("POST", "/", strings.NewReader("form"), true)
	do("GET", "/", nil, true)
	if n := conns.Load(); n != 5 {
		t.Fatalf("after a POST: %d streams, want 5", n)
	}
}

// A kept stream the back-end closed while it was idle is found out before
// any answer came, and the request goes again on a fresh stream.
func TestStaleKeptStreamRetried(t *testing.T) {
	tr, dial, conns := keepServer(t, 50*time.Millisecond, func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("hello"))
	})
	for i := range 3 {
		req, _ := http.NewRequest("GET", "http://backend/", nil)
		resp, err := exchangeKept(tr, dial, req)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "hello" {
			t.Fatalf("request %d: %q", i, b)
		}
		tr.idle.mu.Lock()
		kept := tr.idle.n
		tr.idle.mu.Unlock()
		if kept != 1 {
			t.Fatalf("request %d: %d streams kept, want 1", i, kept)
		}
		time.Sleep(200 * time.Millisecond) // the back-end closes the idle stream
	}
	if n := conns.Load(); n != 3 {
		t.Fatalf("%d streams, want 3 (each kept one was stale)", n)
	}
}

// The pool holds at most max streams in all, hands back the most recent of
// a key first, closes what it finds expired, and closes everything when
// the transport is cleaned up.
func TestIdleStreamsBounded(t *testing.T) {
	now := time.Unix(1000, 0)
	p := newIdleStreams(2)
	p.clock = func() time.Time { return now }
	a, b, c := newPipeConn(), newPipeConn(), newPipeConn()
	k := idleKey{addr: "be1:4433", prio: 2}
	if !p.put(k, a) || !p.put(idleKey{addr: "be1:4433", prio: 0}, b) {
		t.Fatal("put refused below the bound")
	}
	if p.put(k, c) {
		t.Fatal("a third stream kept with max 2")
	}
	if got := p.get(k); got != a {
		t.Fatalf("get: %v, want the kept stream", got)
	}
	if p.get(k) != nil {
		t.Fatal("a key handed out the same stream twice")
	}
	p.put(k, a)
	now = now.Add(idleStreamTimeout + time.Second)
	if p.get(k) != nil || !a.closed.Load() {
		t.Fatal("an expired stream was handed out, or left open")
	}
	p.close()
	if !b.closed.Load() {
		t.Fatal("close left a kept stream open")
	}
	if p.put(k, c) {
		t.Fatal("a closed pool kept a stream")
	}
}

type pipeConn struct {
	net.Conn
	closed atomic.Bool
}

func newPipeConn() *pipeConn {
	c, _ := net.Pipe()
	return &pipeConn{Conn: c}
}

func (p *pipeConn) Close() error { p.closed.Store(true); return p.Conn.Close() }
