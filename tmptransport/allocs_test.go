package tmptransport

import (
	"context"
	"io"
	"runtime"
	"testing"
	"time"
)

// A bulk transfer costs a bounded number of heap allocations per packet,
// both ends together: the packet's sent record and its frames, and what
// the socket layer allocates (a source address per received datagram).
// Per-packet garbage was a large share of the CPU on a fast link (issue
// 20): a header, a STREAM frame, a nonce, two address strings and a copy
// of every frame's data, each allocated per packet or per frame.
//
// Packets stay at the base size here, as on a 1500-byte path: path MTU
// discovery on loopback would grow them, and spread the same allocations
// over fewer, larger packets.
func TestBulkTransferAllocationsPerPacket(t *testing.T) {
	p := getPKI(t)
	sc, cc := p.serverConfig(), p.clientConfig()
	sc.NoPathMTUDiscovery, cc.NoPathMTUDiscovery = true, true
	_, c, s := pair(t, sc, cc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	chunk := make([]byte, 64<<10)
	send := func(n int) {
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
	if per > 4 {
		t.Fatalf("%.2f heap allocations a packet, want at most 4", per)
	}
}
