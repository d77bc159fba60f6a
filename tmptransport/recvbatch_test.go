package tmptransport

import (
	"net"
	"testing"
	"time"
)

// A GRO socket reads a few 64 kB buffers per syscall, since each may hold a
// coalesced run. When full batches of single datagrams arrive (a path
// without GRO, such as a TUN device, or datagrams sent one by one), the
// batch grows, up to readBatchSize, and every datagram is still delivered.
// A socket without GRO (a kernel before 5.0, or not Linux) reads
// readBatchSize datagrams per syscall from the start.
func TestReadBatchGrowsWhenNothingCoalesces(t *testing.T) {
	rc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	r := newPacketReader(rc, 1500)
	if start := len(r.msgs); (r.gro && start != groBatchSize) || (!r.gro && start != readBatchSize) {
		t.Fatalf("batch of %d to start (GRO %v)", start, r.gro)
	}
	sc, err := net.DialUDP("udp", nil, rc.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	// One sendmsg per datagram: loopback does not coalesce them. 64 fit
	// in the socket's default receive buffer.
	const sent = 64
	for i := 0; i < sent; i++ {
		if _, err := sc.Write(make([]byte, 1200)); err != nil {
			t.Fatal(err)
		}
	}
	got := 0
	rc.SetReadDeadline(time.Now().Add(5 * time.Second))
	for got < sent {
		if err := r.read(func(b []byte, _ net.Addr, _ time.Time) {
			if len(b) != 1200 {
				t.Fatalf("datagram of %d bytes", len(b))
			}
			got++
		}); err != nil {
			t.Fatalf("after %d datagrams: %v", got, err)
		}
	}
	if len(r.msgs) != readBatchSize {
		t.Fatalf("batch of %d after %d single datagrams, want %d", len(r.msgs), sent, readBatchSize)
	}
}
