package tmptransport

import (
	"context"
	"net"
	"testing"
	"time"
)

// An attacker's tools, for the tests of what a listener does before a
// handshake completes. Nothing here is a mock: the packets go over real
// loopback sockets to a real listener.

// captureClientInitial returns the first flight a real dialer sends: the
// Initials carrying a real ClientHello (two packets with a post-quantum key
// share), the first padded to 1200 bytes. Replayed under fresh session IDs
// they cost a listener what a real client's first flight does: a TLS server
// state, a key exchange, a signature and its first flight.
func captureClientInitial(t testing.TB) [][]byte {
	t.Helper()
	sink, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		cfg := getPKI(t).clientConfig()
		cfg.DialAttempts = 1
		dialOnce(ctx, t, sink.LocalAddr(), cfg)
	}()
	var flight [][]byte
	var pn0 uint64
	buf := make([]byte, 2048)
	sink.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		n, _, err := sink.ReadFrom(buf)
		if err != nil {
			break
		}
		h, err := parseHeader(buf[:n])
		if err != nil || h.typ != packetInitial {
			continue
		}
		if len(flight) > 0 && h.pn < pn0+uint64(len(flight)) {
			break // the resend: the flight is complete
		}
		if len(flight) == 0 {
			pn0 = h.pn
		}
		flight = append(flight, append([]byte(nil), buf[:n]...))
		// The resend timer is 300 ms: the flight's packets come at once.
		sink.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	}
	cancel()
	<-done
	if len(flight) == 0 {
		t.Fatal("the dialer sent no Initial")
	}
	return flight
}

// dialOnce dials remote from a fresh socket and gives up with ctx.
func dialOnce(ctx context.Context, t testing.TB, remote net.Addr, cfg *Config) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Error(err)
		return
	}
	defer pc.Close()
	DialConn(ctx, pc, remote, cfg)
}

// withSessionID returns a copy of a long-header packet under another
// session ID.
func withSessionID(pkt []byte, id sessionID) []byte {
	p := append([]byte(nil), pkt...)
	copy(p[5:5+sessionIDLen], id[:])
	return p
}

// sendFlight sends a captured flight under session ID id.
func sendFlight(c net.PacketConn, flight [][]byte, id sessionID, to net.Addr) int {
	n := 0
	for _, p := range flight {
		c.WriteTo(withSessionID(p, id), to)
		n += len(p)
	}
	return n
}

// withToken rebuilds a flight of Initials under session ID id with a token
// in every header, as a client that followed a Retry sends it: the CRYPTO
// data is cut anew so that each packet still fits.
func withToken(flight [][]byte, id sessionID, token []byte) [][]byte {
	var data []byte
	for _, p := range flight {
		h, err := parseHeader(p)
		if err != nil {
			panic(err)
		}
		fp := frameParser{b: h.payload}
		for {
			f, err := fp.next()
			if f == nil || err != nil {
				break
			}
			if cf, ok := f.(*cryptoFrame); ok {
				if end := int(cf.Offset) + len(cf.Data); end > len(data) {
					data = append(data, make([]byte, end-len(data))...)
				}
				copy(data[cf.Offset:], cf.Data)
			}
		}
	}
	room := 1452 - longHeaderLen - 1 - len(token) - aeadOverhead
	var out [][]byte
	for i, payload := range appendCryptoFrames(data, room) {
		pkt := appendInitialHeader(nil, packetInitial, id, uint64(i), token)
		pkt = append(pkt, payload...)
		if pad := minPacketSize - len(pkt); pad > 0 {
			pkt = paddingFrame{n: pad}.appendTo(pkt)
		}
		out = append(out, pkt)
	}
	return out
}

// fragmentedInitials builds Initials for session id that carry 1-byte CRYPTO
// fragments at even offsets, never offset 0 (nothing is ever delivered to
// TLS), from offset `from` on; each packet is padded to 1200 bytes. It
// returns the packets and the offset after the last fragment.
func fragmentedInitials(id sessionID, pn *uint64, from uint64, count int) ([][]byte, uint64) {
	var out [][]byte
	off := from
	for range count {
		p := appendInitialHeader(nil, packetInitial, id, *pn, nil)
		*pn++
		for len(p)+8 <= minPacketSize && off < maxCryptoBuffer {
			p = (&cryptoFrame{Offset: off, Data: []byte{0x16}}).appendTo(p)
			off += 2
		}
		p = paddingFrame{n: minPacketSize - len(p)}.appendTo(p)
		out = append(out, p)
	}
	return out, off
}

// contiguousInitials carries the same number of CRYPTO bytes per packet as
// fragmentedInitials, in one frame per packet, contiguous from offset `from`.
func contiguousInitials(id sessionID, pn *uint64, from uint64, perPacket, count int) ([][]byte, uint64) {
	var out [][]byte
	off := from
	data := make([]byte, perPacket)
	for range count {
		p := appendInitialHeader(nil, packetInitial, id, *pn, nil)
		*pn++
		if off+uint64(perPacket) <= maxCryptoBuffer {
			p = (&cryptoFrame{Offset: off, Data: data}).appendTo(p)
			off += uint64(perPacket)
		}
		p = paddingFrame{n: minPacketSize - len(p)}.appendTo(p)
		out = append(out, p)
	}
	return out, off
}

// spoofer sends from many sockets (source ports), reading nothing back: the
// replies go to addresses that never answer, as a spoofed flood's do.
type spoofer struct {
	conns []net.PacketConn
	next  int
}

func newSpoofer(t testing.TB, host string, ports int) *spoofer {
	t.Helper()
	s := &spoofer{}
	for range ports {
		c, err := net.ListenPacket("udp", net.JoinHostPort(host, "0"))
		if err != nil {
			t.Fatal(err)
		}
		s.conns = append(s.conns, c)
	}
	t.Cleanup(func() {
		for _, c := range s.conns {
			c.Close()
		}
	})
	return s
}

// sendFlight sends a flight under a fresh session ID from the next port.
func (s *spoofer) sendFlight(flight [][]byte, to net.Addr) {
	sendFlight(s.conns[s.next%len(s.conns)], flight, newSessionID(), to)
	s.next++
}

// flood sends flights under fresh random session IDs, rate Initial packets
// a second, until ctx ends or for d, and returns how many packets it sent.
func (s *spoofer) flood(ctx context.Context, flight [][]byte, to net.Addr, rate int, d time.Duration) int {
	const tick = 10 * time.Millisecond
	perTick := max(rate*int(tick)/int(time.Second)/len(flight), 1)
	t := time.NewTicker(tick)
	defer t.Stop()
	end := time.Now().Add(d)
	n := 0
	for time.Now().Before(end) {
		for range perTick {
			s.sendFlight(flight, to)
			n += len(flight)
		}
		select {
		case <-ctx.Done():
			return n
		case <-t.C:
		}
	}
	return n
}
