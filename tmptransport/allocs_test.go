package tmptransport

import (
	"context"
	"io"
	"net"
	"runtime"
	"testing"
	"time"
)

// A bulk transfer costs less than one heap allocation per packet, both ends
// together. Per-packet garbage was a large share of the CPU on a fast link
// (issue 20): a header, a STREAM frame, a nonce, two address strings and a
// copy of every frame's data, each allocated per packet or per frame; then
// the packet's sent record (1.46 allocations a packet until records were
// reused, sentHistory.free).
//
// Packets stay at the base size here, as on a 1500-byte path: path MTU
// discovery on loopback would grow them, and spread the same allocations
// over fewer, larger packets.
func TestBulkTransferAllocationsPerPacket(t *testing.T) {
	c, s := basePacketPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	send := func(n int) { sendBulk(ctx, t, c, s, n) }
	send(8 << 20) // warm up: windows grown, pools filled
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	cs0, ss0 := c.Stats(), s.Stats()
	send(32 << 20)
	runtime.ReadMemStats(&m1)
	cs1, ss1 := c.Stats(), s.Stats()
	packets := (cs1.PacketsSent - cs0.PacketsSent) + (ss1.PacketsSent - ss0.PacketsSent)
	per := float64(m1.Mallocs-m0.Mallocs) / float64(packets)
	t.Logf("%d packets both ways, %d allocations: %.2f a packet", packets, m1.Mallocs-m0.Mallocs, per)
	bound := 1.0
	if raceEnabled {
		bound = 1.5 // sync.Pool drops some buffers (2.05 before records were reused)
	}
	if per >= bound {
		t.Fatalf("%.2f heap allocations a packet, want fewer than %.1f", per, bound)
	}
}

// Settled sent records are kept for reuse up to maxFreePackets, with their
// frames cleared so that they hold no stream.
func TestSentRecordReuseIsBounded(t *testing.T) {
	var h sentHistory
	st := &Stream{}
	for pn := range uint64(maxFreePackets + 100) {
		p := h.newPacket()
		p.pn, p.ackEliciting, p.size = pn, true, 1000
		p.frames = append(p.frames, sentFrame{kind: sfStreamData, stream: st}, sentFrame{kind: sfStreamData, stream: st})
		h.onSent(p)
	}
	for _, p := range h.packets {
		p.acked = true
	}
	h.trim()
	if len(h.free) != maxFreePackets {
		t.Fatalf("%d records kept, bound %d", len(h.free), maxFreePackets)
	}
	for _, p := range h.free {
		if len(p.frames) != 0 || p.acked || p.pn != 0 {
			t.Fatalf("a kept record is not cleared: %+v", p)
		}
		for _, f := range p.frames[:cap(p.frames)] {
			if f.stream != nil {
				t.Fatal("a kept record still refers to a stream")
			}
		}
	}
	p := h.newPacket()
	if len(h.free) != maxFreePackets-1 || cap(p.frames) < 2 {
		t.Fatalf("newPacket: %d left, frames capacity %d", len(h.free), cap(p.frames))
	}
}

// A transfer over a path that loses packets allocates little per packet at
// the receiver either. Each repair lands in a gap, below data that came
// after it; the receive buffer copied such data into a fresh allocation,
// and re-made its chunk list whenever a reader emptied it. On the lan
// profile (15 % of packets dropped at the bottleneck) that was 22 MB a
// second of garbage at the front-end, and a tenth of its CPU in the
// allocator and the collector (bench/RESULTS.md, session 13).
func TestLossyTransferAllocationsPerPacket(t *testing.T) {
	p := getPKI(t)
	sc, cc := p.serverConfig(), p.clientConfig()
	sc.NoPathMTUDiscovery, cc.NoPathMTUDiscovery = true, true
	var lossy *lossyConn
	c, s := impairedPair(t, sc, cc, nil, func(pc net.PacketConn) net.PacketConn {
		lossy = newLossyConn(pc, 0.05, 0, 0, 7)
		return lossy
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	send := func(n int) { sendBulk(ctx, t, c, s, n) }
	send(4 << 20) // warm up
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	ss0, lost0 := s.Stats(), lossy.dropped.Load()
	send(16 << 20)
	runtime.ReadMemStats(&m1)
	ss1, lost1 := s.Stats(), lossy.dropped.Load()
	received := ss1.PacketsReceived - ss0.PacketsReceived
	perPkt := float64(m1.TotalAlloc-m0.TotalAlloc) / float64(received)
	t.Logf("%d packets received, %d lost on the way, %d allocations of %d bytes: %.0f bytes a packet received",
		received, lost1-lost0, m1.Mallocs-m0.Mallocs, m1.TotalAlloc-m0.TotalAlloc, perPkt)
	if lost1 == lost0 {
		t.Fatal("no packet was lost: the test does not test repairs")
	}
	// 541–552 bytes a packet before the ACK frames and the receive
	// buffer reused their memory, 118–125 after. Under the race detector
	// sync.Pool drops buffers at random and their replacements dominate
	// (2 206 before, 1 817 after), so the bound holds without it;
	// TestRecvBufferRepairsAllocateNothing holds under it too.
	if !raceEnabled && perPkt >= 250 {
		t.Fatalf("%.0f bytes allocated a packet received, want under 250", perPkt)
	}
}

// sendBulk sends n bytes on a new stream from c, in 64 KiB writes, and
// waits until s has read them all.
func sendBulk(ctx context.Context, t *testing.T, c, s *Session, n int) {
	t.Helper()
	st, err := c.OpenStream(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan int64, 1)
	go func() {
		rs, err := s.AcceptStream(ctx)
		if err != nil {
			done <- -1
			return
		}
		got, _ := io.Copy(io.Discard, rs)
		done <- got
	}()
	chunk := make([]byte, 64<<10)
	for sent := 0; sent < n; sent += len(chunk) {
		if _, err := st.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	st.CloseWrite()
	if got := <-done; got != int64(n) {
		t.Fatalf("received %d of %d bytes", got, n)
	}
	st.Close()
}
