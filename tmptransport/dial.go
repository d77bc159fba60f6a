package tmptransport

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"syscall"
	"time"
)

// Dial opens a session to a TMP listener at addr ("host:port"). It retries
// with exponential backoff (Config.DialAttempts) when the peer does not
// answer, but not when the handshake fails (a wrong certificate does not get
// better by retrying).
func Dial(ctx context.Context, addr string, cfg *Config) (*Session, error) {
	c, err := cfg.withDefaults(false)
	if err != nil {
		return nil, err
	}
	raddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, err
	}
	backoff := 100 * time.Millisecond
	var lastErr error
	for attempt := 0; attempt < c.DialAttempts; attempt++ {
		if attempt > 0 {
			// Full jitter (AWS Architecture Blog, "Exponential Backoff And
			// Jitter"), so that many front-ends do not redial in step.
			d := time.Duration(rand.Int64N(int64(backoff))) + backoff/2
			select {
			case <-time.After(d):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			backoff = min(2*backoff, 5*time.Second)
		}
		conn, err := net.DialUDP("udp", nil, raddr)
		if err != nil {
			return nil, err
		}
		s, err := dialConn(ctx, conn, raddr, c, true)
		if err == nil {
			return s, nil
		}
		lastErr = err
		var se *SessionError
		if errors.As(err, &se) || ctx.Err() != nil {
			return nil, err
		}
	}
	return nil, lastErr
}

// DialConn opens a session over an existing PacketConn, which the caller
// keeps. Tests use it to run sessions over impaired connections.
func DialConn(ctx context.Context, conn net.PacketConn, remote net.Addr, cfg *Config) (*Session, error) {
	c, err := cfg.withDefaults(false)
	if err != nil {
		return nil, err
	}
	return dialConn(ctx, conn, remote, c, false)
}

func dialConn(ctx context.Context, conn net.PacketConn, remote net.Addr, cfg *Config, owns bool) (*Session, error) {
	tuneSocket(conn)
	s := newSession(cfg, true, conn, remote, newSessionID(), nil)
	s.ownsConn = owns
	_, s.connectd = conn.(*net.UDPConn)
	if s.connectd && conn.(*net.UDPConn).RemoteAddr() == nil {
		s.connectd = false
	}
	readDone := make(chan struct{})
	go s.readLoop(readDone)
	go func() {
		s.run(s.ctx)
		if !owns {
			// Unblock readLoop on a socket we do not own.
			conn.SetReadDeadline(time.Unix(1, 0))
		}
		<-readDone
		close(s.readerGone)
	}()
	select {
	case <-s.hsDone:
	case <-ctx.Done():
		s.CloseWithError(HandshakeFailure, "dial cancelled")
		<-s.readerGone
		return nil, ctx.Err()
	}
	s.mu.Lock()
	err := s.closeErr
	s.mu.Unlock()
	if err != nil {
		<-s.done
		<-s.readerGone
		return nil, err
	}
	return s, nil
}

// readLoop reads the dialer's own socket. It ends when the socket is closed
// (owned) or its read deadline is forced (borrowed).
func (s *Session) readLoop(done chan struct{}) {
	defer close(done)
	r := newPacketReader(s.conn, s.cfg.MaxPacketSize+1)
	o := &earlyOpener{s: s}
	deliver := func(b []byte, addr net.Addr, at time.Time) {
		if len(b) > s.cfg.MaxPacketSize {
			return
		}
		if addr != nil && !s.connectd && !sameAddr(addr, s.RemoteAddr()) {
			return // not our peer
		}
		// The socket is this session's alone, so block rather than drop:
		// the kernel's socket buffer is the queue.
		d, ok := o.open(b)
		if !ok {
			d = datagram{b: append(getBuf(len(b)), b...)}
		}
		d.at = at
		// A send that does not have to wait costs no select over two
		// channels: that select, for every datagram, was 6 % of a
		// front-end's CPU on the lan profile (1452-byte packets).
		select {
		case s.recvCh <- d:
			return
		default:
		}
		select {
		case s.recvCh <- d:
		case <-s.closed:
			putBuf(d.b)
		}
	}
	for {
		if err := r.read(deliver); err != nil {
			select {
			case <-s.closed:
				return
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if errors.Is(err, syscall.ECONNREFUSED) {
				// ICMP port unreachable on a connected socket: a hint
				// that the peer is gone, weighed in onTimersLocked.
				s.refusedAt.Store(time.Now().UnixNano())
				signal(s.wake)
			}
			continue
		}
	}
}
