package tmptransport

import (
	"errors"
	"net"
	"runtime"
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

// A connected socket (a dialed session's own) is read in batches on Linux
// without an address per datagram (recvmmsg_linux.go): every datagram
// arrives, whole and in order, with a nil address, and the batch grows as
// on any socket.
func TestConnectedSocketBatchesWithoutAddresses(t *testing.T) {
	peer, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	c, err := net.DialUDP("udp", nil, peer.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := newPacketReader(c, 1500)
	if runtime.GOOS == "linux" && r.mm == nil {
		t.Fatal("a connected UDP socket on Linux is not read with recvmmsg of its own")
	}
	const sent = 64
	for i := range sent {
		b := make([]byte, 1000+i)
		b[0] = byte(i)
		if _, err := peer.WriteToUDP(b, c.LocalAddr().(*net.UDPAddr)); err != nil {
			t.Fatal(err)
		}
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got := 0
	for got < sent {
		if err := r.read(func(b []byte, addr net.Addr, _ time.Time) {
			if len(b) != 1000+got || b[0] != byte(got) {
				t.Fatalf("datagram %d: %d bytes starting %d", got, len(b), b[0])
			}
			if r.mm != nil && addr != nil {
				t.Fatalf("datagram %d came with address %v", got, addr)
			}
			got++
		}); err != nil {
			t.Fatalf("after %d datagrams: %v", got, err)
		}
	}
	if r.batchLen() != readBatchSize {
		t.Fatalf("batch of %d after %d single datagrams, want %d", r.batchLen(), sent, readBatchSize)
	}
	// A read deadline ends a read that waits, as on any socket.
	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	var ne net.Error
	if err := r.read(func([]byte, net.Addr, time.Time) {}); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read past the deadline: %v, want a timeout", err)
	}
}
