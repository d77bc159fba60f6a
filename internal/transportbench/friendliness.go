package transportbench

import (
	"context"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/conductor-edge/conductor/internal/wan"
)

// Workload (d), friendliness: a peer's N parallel downloads share the
// bottleneck with M plain TCP (Cubic) bulk flows. share is the peer's part
// of what crossed the bottleneck; competitor_ratio is what the M flows got
// against the peer, divided by what they got against N plain TCP flows
// (measured in the same run). TMP may take capacity that lossy TCP leaves
// idle, but should not take what TCP could have used (ratio near 1).
const (
	friendlyN = 8
	friendlyM = 4
	tcpPort   = 9500
)

// tcpBulkServer streams the pattern to every connection, from namespace B,
// with Cubic.
func tcpBulkServer(l *wan.Link) (stop func(), err error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptString(int(fd), syscall.IPPROTO_TCP, 13 /* TCP_CONGESTION */, "cubic")
		})
		return serr
	}}
	var ln net.Listener
	if err := l.InB(func() (err error) {
		ln, err = lc.Listen(context.Background(), "tcp", net.JoinHostPort(l.AddrB.String(), strconv.Itoa(tcpPort)))
		return
	}); err != nil {
		return nil, err
	}
	return ServeConns(ln, func(c net.Conn) {
		for writePattern(c, 1<<30) == nil {
		}
	}), nil
}

// ServeConns runs handle for every connection ln accepts, each in its own
// goroutine. The stop it returns closes the listener and every open
// connection, and waits for the handlers: a handler whose peer vanished
// with the link would otherwise block in Write for ever.
func ServeConns(ln net.Listener, handle func(net.Conn)) (stop func()) {
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = true
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() {
					mu.Lock()
					delete(conns, c)
					mu.Unlock()
					c.Close()
				}()
				handle(c)
			}()
		}
	}()
	return func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	}
}

// tcpFlows runs n TCP downloads from namespace A for d and returns the
// bytes received.
func tcpFlows(ctx context.Context, l *wan.Link, n int, d time.Duration) int64 {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var total atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var c net.Conn
			if err := l.InA(func() (err error) {
				c, err = (&net.Dialer{}).DialContext(ctx, "tcp", net.JoinHostPort(l.AddrB.String(), strconv.Itoa(tcpPort)))
				return
			}); err != nil {
				return
			}
			defer c.Close()
			stop := context.AfterFunc(ctx, func() { c.Close() })
			defer stop()
			n, _ := io.Copy(io.Discard, c)
			total.Add(n)
		}()
	}
	wg.Wait()
	return total.Load()
}

// friendliness measures share and competitor_ratio for client c; baseline
// is what M flows got against N plain TCP flows (0: measure it now).
func friendliness(ctx context.Context, l *wan.Link, c Client, d time.Duration, baseline *int64) (share, ratio float64) {
	stop, err := tcpBulkServer(l)
	if err != nil {
		return 0, 0
	}
	defer stop()
	if *baseline == 0 {
		var wg sync.WaitGroup
		var comp int64
		wg.Add(2)
		go func() { defer wg.Done(); tcpFlows(ctx, l, friendlyN, d) }()
		go func() { defer wg.Done(); comp = tcpFlows(ctx, l, friendlyM, d) }()
		wg.Wait()
		*baseline = max(comp, 1)
	}
	var wg sync.WaitGroup
	var mine, comp int64
	wg.Add(2)
	go func() {
		defer wg.Done()
		mine = bulkN(ctx, c, friendlyN, d)
	}()
	go func() { defer wg.Done(); comp = tcpFlows(ctx, l, friendlyM, d) }()
	wg.Wait()
	if mine+comp == 0 {
		return 0, 0
	}
	return float64(mine) / float64(mine+comp), float64(comp) / float64(*baseline)
}

// bulkN is bulk with n parallel downloads.
func bulkN(ctx context.Context, c Client, n int, d time.Duration) int64 {
	bctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var total atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < n; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for bctx.Err() == nil {
				got, _ := c.Get(bctx, 4<<20, false)
				total.Add(got)
			}
		}()
	}
	wg.Wait()
	return total.Load()
}
