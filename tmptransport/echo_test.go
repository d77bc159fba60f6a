package tmptransport

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sync"
	"testing"
	"time"
)

// payloadFor returns stream i's deterministic test payload.
func payloadFor(i, n int) []byte {
	b := make([]byte, n)
	var seed [8]byte
	binary.BigEndian.PutUint64(seed[:], uint64(i))
	h := sha256.Sum256(seed[:])
	for off := 0; off < n; off += len(h) {
		copy(b[off:], h[:])
		h = sha256.Sum256(h[:])
	}
	return b
}

// runEcho opens streams concurrent streams, sends size bytes on each, and
// checks that every byte comes back exact.
func runEcho(t *testing.T, c, peer *Session, streams, size int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, streams)
	for i := 0; i < streams; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			st, err := c.OpenStream(ctx, Priority(i%NumPriorities))
			if err != nil {
				errs <- fmt.Errorf("open %d: %w", i, err)
				return
			}
			defer st.Close()
			want := payloadFor(i, size)
			werr := make(chan error, 1)
			go func() {
				_, err := st.Write(want)
				if err == nil {
					err = st.CloseWrite()
				}
				werr <- err
			}()
			got, err := io.ReadAll(st)
			if err != nil {
				errs <- fmt.Errorf("stream %d read: %w", i, err)
				return
			}
			if err := <-werr; err != nil {
				errs <- fmt.Errorf("stream %d write: %w", i, err)
				return
			}
			if !bytes.Equal(got, want) {
				errs <- fmt.Errorf("stream %d: got %d bytes, want %d (or content differs)", i, len(got), len(want))
			}
		}(i)
	}
	doneCh := make(chan struct{})
	go func() { wg.Wait(); close(doneCh) }()
	// Fail on a stall (no byte moving for 20 s), not on slowness: under the
	// race detector on a loaded CI machine the run can take minutes.
	progress := func() uint64 {
		var n uint64
		for _, sess := range []*Session{c, peer} {
			if sess != nil {
				for _, b := range sess.Stats().StreamBytesReceived {
					n += b
				}
			}
		}
		return n
	}
	last, lastChange := progress(), time.Now()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
wait:
	for {
		select {
		case <-doneCh:
			break wait
		case <-tick.C:
			if p := progress(); p != last {
				last, lastChange = p, time.Now()
				continue
			}
			if time.Since(lastChange) < 20*time.Second {
				continue
			}
		}
		if f, err := os.Create(filepath.Join(os.TempDir(), "tmp-stall-goroutines.txt")); err == nil {
			pprof.Lookup("goroutine").WriteTo(f, 2)
			f.Close()
		}
		t.Log(c.debugState())
		if peer != nil {
			t.Log(peer.debugState())
		}
		t.Fatal("echo stalled: no progress for 20 s")
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestEcho1000Streams(t *testing.T) {
	p := getPKI(t)
	_, c, s := pair(t, p.serverConfig(), p.clientConfig())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go echoServer(ctx, s)
	start := time.Now()
	runEcho(t, c, s, 1000, 64<<10)
	st := c.Stats()
	ss := s.Stats()
	t.Logf("1000×64 kB echo in %v; client sent %d packets, lost %d, retransmitted %d B, srtt %v, cwnd %d; server lost %d, retransmitted %d B; overload drops %d/%d",
		time.Since(start), st.PacketsSent, st.PacketsLost, st.RetransmittedBytes, st.SmoothedRTT, st.CongestionWindow, ss.PacketsLost, ss.RetransmittedBytes, st.OverloadDrops, ss.OverloadDrops)
}

// TestEcho1000StreamsLossy is the same run with 5 % loss, 2 % duplication and
// 5 % reordering on both directions.
func TestEcho1000StreamsLossy(t *testing.T) {
	p := getPKI(t)
	var sl, cl *lossyConn
	c, s := impairedPair(t, p.serverConfig(), p.clientConfig(),
		func(pc net.PacketConn) net.PacketConn { sl = newLossyConn(pc, 0.05, 0.02, 0.05, 1); return sl },
		func(pc net.PacketConn) net.PacketConn { cl = newLossyConn(pc, 0.05, 0.02, 0.05, 2); return cl })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go echoServer(ctx, s)
	start := time.Now()
	runEcho(t, c, s, 1000, 64<<10)
	st := c.Stats()
	t.Logf("lossy 1000×64 kB echo in %v; dropped %d+%d, duplicated %d+%d, reordered %d+%d; client lost %d packets, retransmitted %d bytes, replays dropped %d",
		time.Since(start), sl.dropped.Load(), cl.dropped.Load(), sl.duplicated.Load(), cl.duplicated.Load(),
		sl.reordered.Load(), cl.reordered.Load(), st.PacketsLost, st.RetransmittedBytes, st.ReplaysDropped)
	if sl.dropped.Load() == 0 || cl.duplicated.Load() == 0 || cl.reordered.Load() == 0 {
		t.Fatal("impairment was not applied")
	}
	sl.stop.Store(true)
	cl.stop.Store(true)
}
