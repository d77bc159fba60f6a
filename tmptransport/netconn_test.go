package tmptransport

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/http"
	"testing"
	"time"

	"golang.org/x/net/nettest"
)

// TestStreamIsANetConn runs x/net's conformance suite for net.Conn on a pair
// of streams: what net/http, caddy-l4 and every io.Copy around a stream take
// for granted (deadlines, concurrent use, Close unblocking).
func TestStreamIsANetConn(t *testing.T) {
	nettest.TestConn(t, streamPipe(t, OpenStreamOptions{Priority: 4}))
}

// A compressed stream (zstd both ways) is a net.Conn too: a deadline that
// passes must not leave its decoder broken for the reads after it.
func TestCompressedStreamIsANetConn(t *testing.T) {
	nettest.TestConn(t, streamPipe(t, OpenStreamOptions{Priority: 4, Compress: true}))
}

// streamPipe makes a pair of streams over a new session each time.
func streamPipe(t *testing.T, o OpenStreamOptions) nettest.MakePipe {
	p := getPKI(t)
	return func() (c1, c2 net.Conn, stop func(), err error) {
		_, c, s := pair(t, p.serverConfig(), p.clientConfig())
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		a, err := c.OpenStreamOptions(ctx, o)
		if err != nil {
			return nil, nil, nil, err
		}
		b, err := s.AcceptStream(ctx)
		if err != nil {
			return nil, nil, nil, err
		}
		return a, b, func() { a.Close(); b.Close() }, nil
	}
}

// blockedWriter opens a stream whose peer never reads, with a 64 KiB send
// buffer and a 32 KiB window at the peer, and starts a Write that cannot
// finish. It returns the stream and the Write's result.
func blockedWriter(t *testing.T) (*Session, *Stream, <-chan error) {
	t.Helper()
	p := getPKI(t)
	scfg, ccfg := p.serverConfig(), p.clientConfig()
	scfg.InitialStreamWindow, scfg.MaxStreamWindow = 32<<10, 32<<10
	ccfg.SendBufferSize, ccfg.MaxSendBufferSize = 64<<10, 64<<10
	_, c, _ := pair(t, scfg, ccfg)
	st, err := c.OpenStream(context.Background(), 4)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := st.Write(make([]byte, 1<<20))
		done <- err
	}()
	// The writer is stuck once it waits for room and all it sent is
	// acknowledged: what it buffered waits for a window the peer, which
	// does not read, never opens, so nothing else can wake it.
	for {
		c.mu.Lock()
		blocked := st.writeLeft > 0 && st.sb.base == st.sb.next && st.sb.unsent() > 0
		c.mu.Unlock()
		if blocked {
			return c, st, done
		}
		select {
		case err := <-done:
			t.Fatalf("Write of 1 MiB into a 64 KiB buffer nobody drains returned %v", err)
		case <-time.After(time.Millisecond):
		}
	}
}

// waitWrite is what a blocked Write returned once unblocked, or fails the
// test if it stays blocked (a generous bound: this checks liveness, not
// speed).
func waitWrite(t *testing.T, done <-chan error, what string) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatalf("a blocked Write stayed blocked after %s", what)
		return nil
	}
}

// Close unblocks a Write waiting for room (net.Conn: "Any blocked Read or
// Write operations will be unblocked and return errors").
func TestCloseUnblocksABlockedWrite(t *testing.T) {
	_, st, done := blockedWriter(t)
	st.Close()
	if err := waitWrite(t, done, "Close"); !errors.Is(err, ErrWriteClosed) {
		t.Fatalf("blocked Write after Close: %v, want ErrWriteClosed", err)
	}
}

// A write deadline set while a Write waits for room ends that Write.
func TestWriteDeadlineUnblocksABlockedWrite(t *testing.T) {
	_, st, done := blockedWriter(t)
	st.SetWriteDeadline(time.Now().Add(20 * time.Millisecond))
	var ne net.Error
	if err := waitWrite(t, done, "its deadline passed"); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("blocked Write past its deadline: %v, want a timeout net.Error", err)
	}
}

// Setting a write deadline does not wait for the session's lock, which
// the session goroutine holds while it packs a round of packets.
func TestSetWriteDeadlineDoesNotWaitForTheSessionLock(t *testing.T) {
	c, st, done := blockedWriter(t)
	set := make(chan struct{})
	c.mu.Lock()
	go func() {
		st.SetWriteDeadline(time.Now())
		close(set)
	}()
	select {
	case <-set:
		c.mu.Unlock()
	case <-time.After(10 * time.Second):
		c.mu.Unlock()
		t.Fatal("SetWriteDeadline waited for the session's lock")
	}
	var ne net.Error
	if err := waitWrite(t, done, "its deadline was set to now"); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("blocked Write past its deadline: %v, want a timeout net.Error", err)
	}
}

// A compressed Write that times out leaves the stream whole: what it
// reports written arrives, in order, once the peer reads again and the
// writer goes on. Incompressible data goes as raw frames (zstdskip.go): cut
// short by a deadline, a frame would have swallowed the next Write's bytes.
func TestCompressedWriteAfterATimeoutKeepsTheStreamWhole(t *testing.T) {
	for _, c := range []struct {
		name string
		fill func([]byte)
	}{
		{"incompressible", func(b []byte) { rand.New(rand.NewSource(1)).Read(b) }},
		{"compressible", func(b []byte) {
			// Half the entropy: zstd keeps it, and it still fills the
			// buffers.
			rand.New(rand.NewSource(2)).Read(b)
			for i := range b {
				b[i] &= 0x0f
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := getPKI(t)
			scfg, ccfg := p.serverConfig(), p.clientConfig()
			scfg.InitialStreamWindow, scfg.MaxStreamWindow = 64<<10, 64<<10
			ccfg.SendBufferSize, ccfg.MaxSendBufferSize = 64<<10, 64<<10
			_, c1, s1 := pair(t, scfg, ccfg)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			w, err := c1.OpenStreamOptions(ctx, OpenStreamOptions{Priority: 4, Compress: true})
			if err != nil {
				t.Fatal(err)
			}
			data := make([]byte, 4<<20)
			c.fill(data)
			// Nobody reads yet: the Write stops at its deadline.
			w.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
			n1, err := w.Write(data)
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() || n1 >= len(data) {
				t.Fatalf("Write into a stream nobody reads: %d of %d, %v; want a timeout", n1, len(data), err)
			}
			r, err := s1.AcceptStream(ctx)
			if err != nil {
				t.Fatal(err)
			}
			got := make(chan []byte, 1)
			go func() {
				b, _ := io.ReadAll(r)
				got <- b
			}()
			w.SetWriteDeadline(time.Time{})
			n2, err := w.Write(data[n1:])
			if err != nil || n2 != len(data)-n1 {
				t.Fatalf("Write after the deadline was lifted: %d of %d, %v", n2, len(data)-n1, err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			select {
			case b := <-got:
				if !bytes.Equal(b, data) {
					t.Fatalf("read %d bytes, want the %d written, unchanged (first %d and then %d)", len(b), len(data), n1, n2)
				}
			case <-ctx.Done():
				t.Fatal("the reader did not reach the end")
			}
		})
	}
}

// streamListener serves a session's streams as a net.Listener.
type streamListener struct {
	s      *Session
	ctx    context.Context
	cancel context.CancelFunc
}

func (l streamListener) Accept() (net.Conn, error) { return l.s.AcceptStream(l.ctx) }
func (l streamListener) Close() error              { l.cancel(); return nil }
func (l streamListener) Addr() net.Addr            { return l.s.LocalAddr() }

// net/http's server keeps a compressed stream alive across requests. After
// each response it aborts its background read with a read deadline in the
// past; that deadline broke the stream's decoder before, the server's read
// of the next request failed, and every request cost a new stream.
func TestHTTPKeepAliveOverACompressedStream(t *testing.T) {
	p := getPKI(t)
	_, c, s := pair(t, p.serverConfig(), p.clientConfig())
	ctx, cancel := context.WithCancel(context.Background())
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "answer to "+r.URL.Path)
	})}
	go srv.Serve(streamListener{s: s, ctx: ctx, cancel: cancel})
	defer srv.Close()
	st, err := c.OpenStreamOptions(context.Background(), OpenStreamOptions{Priority: 4, Compress: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	br := bufio.NewReader(st)
	for i := range 3 {
		path := fmt.Sprintf("/%d", i)
		fmt.Fprintf(st, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path)
		st.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d on the same stream: %v", i, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || string(body) != "answer to "+path {
			t.Fatalf("request %d: %q, %v", i, body, err)
		}
	}
}
