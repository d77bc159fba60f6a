package tmptransport

import (
	"crypto/rand"
	"net"
	"time"
)

// Path validation (SPEC.md §6.6, RFC 9000 §8.2 and §9). A session follows
// its peer to a new address (NAT rebinding, a new uplink) only once the peer
// has answered a PATH_CHALLENGE sent to that address: an authenticated packet
// proves the peer sent it, not that the peer is at its source address, since
// anyone on the path can rewrite a source address. Until the new path is
// validated, the session keeps sending to the old address, and sends the new
// one at most 3× the bytes it received from it, so a rewritten source cannot
// point the session's traffic at a victim.

// pathChallengeFrame asks the peer to echo Data from the address it reaches.
type pathChallengeFrame struct{ Data [8]byte }

func (f *pathChallengeFrame) appendTo(b []byte) []byte {
	return append(append(b, framePathChallenge), f.Data[:]...)
}
func (*pathChallengeFrame) ackEliciting() bool { return false }

// pathResponseFrame echoes a challenge's Data.
type pathResponseFrame struct{ Data [8]byte }

func (f *pathResponseFrame) appendTo(b []byte) []byte {
	return append(append(b, framePathResponse), f.Data[:]...)
}
func (*pathResponseFrame) ackEliciting() bool { return false }

// pathProbe is a path being validated.
type pathProbe struct {
	addr     net.Addr
	data     [8]byte
	nextSend time.Time
	tries    int
	received int // bytes received from addr
	sent     int // bytes sent to addr
}

const maxPathChallenges = 5

// directedPacket is a packet for an address other than the session's
// current remote (nil: the current remote).
type directedPacket struct {
	b    []byte
	addr net.Addr
}

// onPacketFromNewAddress notes an authenticated packet of n bytes from addr,
// which is not the current remote. Only the highest packet number so far
// starts a probe: an old packet replayed from elsewhere does not.
func (s *Session) onPacketFromNewAddress(addr net.Addr, n int, newest bool, now time.Time) {
	p := s.probe
	if p != nil && sameAddr(p.addr, addr) {
		p.received += n
		return
	}
	if !newest {
		return
	}
	p = &pathProbe{addr: addr, received: n, nextSend: now}
	rand.Read(p.data[:])
	s.probe = p
	s.wakeLocked()
}

// onPathResponse completes a probe whose challenge came back from the
// probed address.
func (s *Session) onPathResponse(f *pathResponseFrame, from net.Addr) {
	p := s.probe
	if p == nil || from == nil || !sameAddr(from, p.addr) || f.Data != p.data {
		return
	}
	addr := p.addr
	s.remote.Store(&addr)
	s.probe = nil
	s.counters.migrations++
}

// onPathChallenge answers a challenge on the path it came from.
func (s *Session) onPathChallenge(f *pathChallengeFrame, from net.Addr) {
	if len(s.pathResponses) >= 4 {
		return // bounded: a peer cannot queue work for us
	}
	if s.connectd || (from != nil && sameAddr(from, s.RemoteAddr())) {
		from = nil
	}
	s.pathResponses = append(s.pathResponses, pathResponse{data: f.Data, addr: from})
	s.wakeLocked()
}

type pathResponse struct {
	data [8]byte
	addr net.Addr // nil: the current remote
}

// sendPathLocked builds PATH_CHALLENGE and PATH_RESPONSE packets.
func (s *Session) sendPathLocked(now time.Time) {
	for _, r := range s.pathResponses {
		pkt, hdr := s.startShort(now)
		pkt = (&pathResponseFrame{Data: r.data}).appendTo(pkt)
		s.directed = append(s.directed, directedPacket{s.finishPathPacket(pkt, hdr, now), r.addr})
	}
	s.pathResponses = s.pathResponses[:0]
	p := s.probe
	if p == nil || now.Before(p.nextSend) {
		return
	}
	if p.tries >= maxPathChallenges {
		s.probe = nil // the address never answered: stay where we are
		return
	}
	pkt, hdr := s.startShort(now)
	pkt = (&pathChallengeFrame{Data: p.data}).appendTo(pkt)
	if p.sent+len(pkt)+aeadOverhead > 3*p.received {
		putBuf(pkt)
		return // RFC 9000 §8.2.1: 3× until the path is validated
	}
	b := s.finishPathPacket(pkt, hdr, now)
	p.sent += len(b)
	p.tries++
	p.nextSend = now.Add(max(2*s.lr.rtt.pto(), 50*time.Millisecond))
	s.directed = append(s.directed, directedPacket{b, p.addr})
}

// finishPathPacket seals a path packet and records it, so that the peer's
// ACK of it is an ACK of a packet we sent.
func (s *Session) finishPathPacket(pkt []byte, hdr int, now time.Time) []byte {
	pn := s.lr.pn
	b := s.finishShort(pkt, hdr)
	s.lr.sent.onSent(&sentPacket{pn: pn, sent: now, size: len(b)})
	s.counters.packetsSent++
	s.counters.bytesSent += uint64(len(b))
	return b
}

// nextPathTimer is when a probe is due.
func (s *Session) nextPathTimer() time.Time {
	if s.probe == nil {
		return time.Time{}
	}
	return s.probe.nextSend
}

// sameAddr reports whether two addresses are the same. Every received
// packet is checked against the peer's address; comparing their String
// forms cost two allocations a packet.
func sameAddr(a, b net.Addr) bool {
	ua, ok1 := a.(*net.UDPAddr)
	ub, ok2 := b.(*net.UDPAddr)
	if ok1 && ok2 {
		return ua.Port == ub.Port && ua.Zone == ub.Zone && ua.IP.Equal(ub.IP)
	}
	return a.String() == b.String()
}
