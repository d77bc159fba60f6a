package agent

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

// probeServer answers on a loopback port: the first `drop` connections it
// closes unanswered (as a Caddy server shutting down in a reload does),
// the rest get status. It counts connections.
func probeServer(t *testing.T, drop int32, status int) (addr string, conns *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	conns = new(atomic.Int32)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n := conns.Add(1)
			if n <= drop {
				c.Close()
				continue
			}
			go func() {
				defer c.Close()
				req, err := http.ReadRequest(bufio.NewReader(c))
				if err != nil {
					return
				}
				if req.Host != "shop.example" {
					status = 421
				}
				resp := &http.Response{StatusCode: status, ProtoMajor: 1, ProtoMinor: 1, Header: http.Header{}, Close: true}
				resp.Write(c)
			}()
		}
	}()
	return ln.Addr().String(), conns
}

// The check after an install survives the reload it races with: a
// connection closed unanswered is tried again, on a fresh connection; an
// answer is final, whatever its status; and a site that never answers
// fails after probeTries connections.
func TestProbeRidesOutAReload(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, c := range []struct {
		name      string
		drop      int32
		status    int
		want      int
		wantConns int32
		fails     bool
	}{
		{"closed once, then answered", 1, 200, 200, 2, false},
		{"answered 503 at once", 0, 503, 503, 1, false},
		{"never answers", 100, 200, 0, probeTries, true},
	} {
		addr, conns := probeServer(t, c.drop, c.status)
		w := &worker{cfg: workerConfig{probe: addr}}
		got, err := w.probeSite(ctx, "shop.example")
		if (err != nil) != c.fails || got != c.want || conns.Load() != c.wantConns {
			t.Errorf("%s: status %d, error %v, %d connections; want %d, failure %v, %d connections",
				c.name, got, err, conns.Load(), c.want, c.fails, c.wantConns)
		}
	}
}
