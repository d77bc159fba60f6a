package tmptransport

// The session's goroutine (run): it owns the socket writes and the
// timers (retransmission, pacing, keep-alive, link-quality reports, idle
// and handshake deadlines), and hands received datagrams to the receive
// path. Methods ending in Locked run with s.mu held.

import (
	"context"
	"net"
	"time"
)

// run is the session's goroutine. It owns timers and socket writes.
func (s *Session) run(ctx context.Context) {
	defer close(s.done)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	s.mu.Lock()
	now := time.Now()
	s.lastRecv = now
	s.hsp.deadline = now.Add(s.cfg.HandshakeTimeout)
	s.lq.mine.start = now
	if err := s.hs.start(ctx); err != nil {
		s.closeLocked(err, false)
	}
	s.mu.Unlock()
	var out [][]byte
	for {
		s.mu.Lock()
		now = time.Now()
		s.applyCreditsLocked()
		s.onTimersLocked(now)
		out = s.sendLocked(now, out[:0])
		directed := s.directed
		s.directed = nil
		dead := s.dead
		next := s.nextTimerLocked(now)
		s.mu.Unlock()
		s.writeAll(out)
		s.writeDirected(directed)
		if dead {
			s.teardown()
			return
		}
		if len(out) >= maxPacketsPerRound {
			// More may be ready, but let waiting ACKs in first: a sender
			// that kept the window full without reading them would see its
			// own backlog as round-trip time and loss.
			select {
			case d := <-s.recvCh:
				s.handleBacklog(d)
			default:
			}
			continue
		}
		timer.Reset(max(time.Until(next), 0))
		select {
		case d := <-s.recvCh:
			s.handleBacklog(d)
		case <-s.wake:
		case <-timer.C:
		case <-ctx.Done():
			s.mu.Lock()
			s.closeLocked(errListenerClosing, true)
			s.mu.Unlock()
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

// writeAll sends a round's packets, in one GSO batch where the socket
// allows it, and returns the buffers to the pool.
func (s *Session) writeAll(pkts [][]byte) {
	if len(pkts) > 1 && s.gso {
		if !s.writeGSO(pkts) {
			s.gso = false // refused once: never again for this session
			for _, p := range pkts {
				s.writeOne(p)
			}
		}
	} else {
		for _, p := range pkts {
			s.writeOne(p)
		}
	}
	for i, p := range pkts {
		putBuf(p)
		pkts[i] = nil
	}
}

// writeDirected sends path packets, each to its own address.
func (s *Session) writeDirected(pkts []directedPacket) {
	for _, p := range pkts {
		if p.addr == nil {
			s.writeOne(p.b)
		} else {
			s.conn.WriteTo(p.b, p.addr)
		}
		putBuf(p.b)
	}
}

func (s *Session) writeOne(p []byte) {
	if s.connectd {
		s.conn.(*net.UDPConn).Write(p)
		return
	}
	s.conn.WriteTo(p, s.RemoteAddr())
}

// handleBacklog handles d and up to 64 more datagrams already waiting.
func (s *Session) handleBacklog(d datagram) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.handleDatagramLocked(d)
	for i := 0; i < 64; i++ {
		select {
		case d = <-s.recvCh:
			s.handleDatagramLocked(d)
		default:
			return
		}
	}
}

// onTimersLocked fires whatever timer has expired.
func (s *Session) onTimersLocked(now time.Time) {
	if s.dead || s.closeFrame != nil {
		return
	}
	if r := s.refusedAt.Load(); r != 0 && s.peerUnreachable(now, time.Unix(0, r)) {
		s.closeLocked(ErrPeerUnreachable, false)
		return
	}
	if !s.established && now.After(s.hsp.deadline) {
		s.closeLocked(ErrHandshakeTimeout, false)
		return
	}
	if now.Sub(s.lastRecv) > s.idleTimeout {
		s.closeLocked(&SessionError{Code: IdleTimeout, Reason: "no packets received for " + s.idleTimeout.String()}, false)
		return
	}
	if !s.established || (s.isClient && !s.confirmed) {
		if !s.hsp.next.IsZero() && !now.Before(s.hsp.next) {
			s.hsp.resendNow = true
			s.hsp.rto = min(2*s.hsp.rto, 3*time.Second)
		}
	}
	if !s.established {
		return
	}
	if !s.lr.sent.lossTime.IsZero() && !now.Before(s.lr.sent.lossTime) {
		s.detectLossLocked(now)
	}
	if t := s.ptoTime(); !t.IsZero() && !now.Before(t) {
		s.onPTOLocked(now)
	}
	if t := s.keepAliveAt(); !t.IsZero() && !now.Before(t) {
		s.lr.pingQueued = true
	}
	if !now.Before(s.lq.next) && s.confirmed {
		s.lq.next = now.Add(s.cfg.LinkQualityInterval)
		s.lq.queued = true
	}
}

// peerUnreachable weighs an ICMP port unreachable received at refused. ICMP
// is unauthenticated, so it alone never kills a session: only when the
// peer has also been silent since (for 3 probe timeouts, at least 200 ms)
// is it taken as the peer being gone. This turns a stopped back-end into a
// fast, clear error instead of a wait for the idle timeout.
func (s *Session) peerUnreachable(now, refused time.Time) bool {
	if s.lastRecv.After(refused) {
		s.refusedAt.Store(0)
		return false
	}
	return now.Sub(s.lastRecv) >= s.unreachableGrace()
}

func (s *Session) unreachableGrace() time.Duration {
	return max(3*s.lr.rtt.pto(), 200*time.Millisecond)
}

func (s *Session) ptoTime() time.Time {
	if s.lr.sent.bytesInFlight <= 0 {
		return time.Time{}
	}
	return s.lr.lastAESent.Add(s.lr.rtt.pto() << min(s.lr.ptoCount, 6))
}

func (s *Session) nextTimerLocked(now time.Time) time.Time {
	next := now.Add(time.Hour)
	set := func(t time.Time) {
		if !t.IsZero() && t.Before(next) {
			next = t
		}
	}
	if s.dead {
		return now
	}
	set(s.lastRecv.Add(s.idleTimeout))
	if s.refusedAt.Load() != 0 {
		set(s.lastRecv.Add(s.unreachableGrace()))
	}
	if !s.established {
		set(s.hsp.deadline)
	}
	if !s.established || (s.isClient && !s.confirmed) {
		set(s.hsp.next)
	}
	if !s.established {
		return next
	}
	set(s.lr.sent.lossTime)
	set(s.nextPathTimer())
	set(s.ptoTime())
	set(s.lr.recv.ackDeadline)
	if s.pacedUntil.After(now) {
		// A past pacing deadline (the window closed after it was set)
		// must not wake run in a loop.
		set(s.pacedUntil)
	}
	set(s.lq.next)
	set(s.keepAliveAt())
	return next
}

// keepAliveAt is when a PING is due: a keep-alive period after the last
// ack-eliciting packet we sent, and not before the peer has been silent for
// half a period. Both conditions make the deadline, not just the first:
// the peer's LINK_QUALITY reports (once a second, not ack-eliciting) keep
// lastRecv fresh, and a deadline taken from lastAESent alone stayed in the
// past and made run spin on a whole core (TestIdleSessionSleeps).
func (s *Session) keepAliveAt() time.Time {
	ka := s.cfg.KeepAlivePeriod
	if ka <= 0 || s.lr.pingQueued {
		return time.Time{}
	}
	t := s.lr.lastAESent.Add(ka)
	if r := s.lastRecv.Add(ka / 2); r.After(t) {
		t = r
	}
	return t
}
