package tmptransport

import (
	"time"
)

// Path MTU discovery: DPLPMTUD (RFC 8899), as QUIC does it (RFC 9000
// §14.3). A session starts at BasePacketSize. Once the handshake is
// confirmed it probes larger sizes, up to the smaller of its own and the
// peer's MaxPacketSize: a probe is a PING padded to the size tried, sent
// with the IP don't-fragment bit, so a path that cannot carry it drops it
// (or the local stack refuses it) rather than fragmenting it. An
// acknowledged probe makes that size the session's packet size; a probe
// lost three times ends the search below it. Probes stay out of
// congestion control (RFC 8899 §4.3: their loss says nothing of
// congestion) and out of the bytes in flight. Two probe timeouts in a row
// on a grown size fall back to the base (a black hole, §4.3), and the
// search starts again after blackHoleRetry; after a search that ended
// below the ceiling, after raiseInterval.
//
// Why: a packet costs the same work whatever its size (a seal, a header,
// an ACK range, a trip through the kernel's per-datagram paths), and on
// loopback or a jumbo-frame LAN the link takes far more than 1452 bytes.
// Without a don't-fragment socket (another OS, a PacketConn that is not a
// UDP socket) no probe is sent: a probe that arrived as IP fragments would
// teach the wrong size.

const (
	pmtuMaxProbes  = 3                // RFC 8899 MAX_PROBES
	raiseInterval  = 10 * time.Minute // RFC 8899 PMTU_RAISE_TIMER
	pmtuMinTimeout = 100 * time.Millisecond
)

// pmtuCandidates are the sizes tried in turn, below the ceiling: Ethernet
// jumbo frames (9000) less IPv6 and UDP headers, then larger steps.
var pmtuCandidates = []int{4096, 8952, 16384, 32768, 65000}

type pmtuSearch struct {
	df      bool  // the socket sets don't-fragment: probing is safe
	base    int   // where the session started, and falls back to
	ceiling int   // the largest size either end takes
	cands   []int // sizes still to try, ascending
	probePN uint64
	probeAt time.Time // when the probe in flight was sent; zero: none
	fails   int
	nextAt  time.Time // no probe before this
}

// start begins the search after the handshake.
func (p *pmtuSearch) start(base, ceiling int, now time.Time) {
	p.base, p.ceiling = base, ceiling
	p.cands = p.cands[:0]
	if !p.df {
		return
	}
	for _, c := range pmtuCandidates {
		if c > base && c < ceiling {
			p.cands = append(p.cands, c)
		}
	}
	if ceiling > base {
		p.cands = append(p.cands, ceiling)
	}
	p.probeAt, p.fails, p.nextAt = time.Time{}, 0, now
}

// want is the size to probe now, if one is due. A probe unanswered for
// three round trips counts as lost.
func (p *pmtuSearch) want(now time.Time, srtt time.Duration) (int, bool) {
	if len(p.cands) == 0 || now.Before(p.nextAt) {
		return 0, false
	}
	if !p.probeAt.IsZero() {
		if now.Sub(p.probeAt) < max(3*srtt, pmtuMinTimeout) {
			return 0, false
		}
		p.lost(now)
		if len(p.cands) == 0 {
			return 0, false
		}
	}
	return p.cands[0], true
}

func (p *pmtuSearch) lost(now time.Time) {
	p.probeAt = time.Time{}
	p.fails++
	if p.fails >= pmtuMaxProbes {
		// This size does not get through: neither does anything larger.
		p.cands, p.fails = p.cands[:0], 0
		p.nextAt = now.Add(raiseInterval)
	}
}

// pmtuProbeLocked builds a probe of size bytes.
func (s *Session) pmtuProbeLocked(now time.Time, size int) []byte {
	pkt := getBuf(size)
	pkt = appendShortHeader(pkt, s.keys.writePhase, s.id, s.lr.pn, false, 0)
	hdrLen := len(pkt)
	pkt = pingFrame{}.appendTo(pkt)
	if pad := size - aeadOverhead - len(pkt); pad > 0 {
		pkt = paddingFrame{n: pad}.appendTo(pkt)
	}
	pn := s.lr.pn
	pkt = s.finishShort(pkt, hdrLen)
	sp := &sentPacket{pn: pn, sent: now, size: len(pkt)}
	sp.one[0] = sentFrame{kind: sfPMTUProbe, length: uint64(len(pkt))}
	sp.frames = sp.one[:1]
	// Not ack-eliciting as far as recovery goes: out of the bytes in
	// flight and congestion control. The peer acknowledges it all the
	// same (a PING).
	s.lr.sent.onSent(sp)
	s.counters.packetsSent++
	s.counters.bytesSent += uint64(len(pkt))
	s.pmtu.probePN, s.pmtu.probeAt = pn, now
	return pkt
}

// pmtuAckedLocked: the path carries size; packets grow to it.
func (s *Session) pmtuAckedLocked(pn uint64, size int) {
	p := &s.pmtu
	if size > s.maxPacket {
		s.maxPacket = size
		s.pace.maxBurst = float64(10 * size)
	}
	if pn == p.probePN {
		p.probeAt = time.Time{}
	}
	for len(p.cands) > 0 && p.cands[0] <= size {
		p.cands = p.cands[1:]
	}
	p.fails = 0
}

// pmtuLostLocked: recovery declared the probe lost.
func (s *Session) pmtuLostLocked(pn uint64, now time.Time) {
	if pn == s.pmtu.probePN && !s.pmtu.probeAt.IsZero() {
		s.pmtu.lost(now)
	}
}

// blackHoleRetry is how soon the search starts again after a fall back to
// the base. RFC 8899's state machine goes from BLACK_HOLE_DETECTED to BASE
// and, once the base is confirmed, back to SEARCHING (§5.2); the raise
// timer is for a search that completed. Two probe timeouts in a row also
// come from a stall that is no black hole: ACKs late twice, on a host
// short of CPU. The session then sent base-size packets for the ten
// minutes of raiseInterval: on loopback that is about a quarter less
// throughput (1 MB bodies: 364 req/s at 1452 bytes against 486–541 at
// 16 kB; bench/RESULTS.md, issue 20). A real black hole now costs three
// more lost probes (PINGs, no data), and then the raise timer.
const blackHoleRetry = time.Second

// pmtuBlackHoleLocked: repeated probe timeouts on a grown size: back to
// the base, and search again soon (blackHoleRetry).
func (s *Session) pmtuBlackHoleLocked(now time.Time) {
	if s.maxPacket <= s.pmtu.base {
		return
	}
	s.maxPacket = s.pmtu.base
	s.pace.maxBurst = float64(10 * s.pmtu.base)
	s.pmtu.start(s.pmtu.base, s.pmtu.ceiling, now.Add(blackHoleRetry))
}
