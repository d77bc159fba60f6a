package tmptransport

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"net"
	"sync"
	"time"
)

// Listener accepts TMP sessions on one UDP socket and demultiplexes packets
// to them by session ID. One read goroutine serves all sessions.
type Listener struct {
	cfg      *Config
	conn     net.PacketConn
	ownsConn bool
	resetKey []byte

	mu       sync.Mutex
	sessions map[sessionID]*Session
	pending  int
	queue    []*Session
	closed   bool
	closeErr error

	acceptSig chan struct{}
	done      chan struct{}
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup

	resetMu     sync.Mutex
	resetTokens float64
	resetLast   time.Time
}

// Listen listens for TMP sessions on a UDP address such as ":4433".
func Listen(addr string, cfg *Config) (*Listener, error) {
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return nil, err
	}
	l, err := NewListener(pc, cfg)
	if err != nil {
		pc.Close()
		return nil, err
	}
	l.ownsConn = true
	return l, nil
}

// NewListener serves TMP on an existing PacketConn (for example one wrapped
// to emulate a lossy network). The caller keeps ownership of conn.
func NewListener(conn net.PacketConn, cfg *Config) (*Listener, error) {
	c, err := cfg.withDefaults(true)
	if err != nil {
		return nil, err
	}
	key, err := resetKeyFor(c)
	if err != nil {
		return nil, err
	}
	tuneSocket(conn)
	ctx, cancel := context.WithCancel(context.Background())
	l := &Listener{
		cfg:       c,
		conn:      conn,
		resetKey:  key,
		sessions:  make(map[sessionID]*Session),
		acceptSig: make(chan struct{}, 1),
		done:      make(chan struct{}),
		ctx:       ctx,
		cancel:    cancel,
	}
	go l.readLoop()
	return l, nil
}

// resetKeyFor returns the key from which stateless reset tokens are derived:
// the configured one, else one derived from the certificate's private key so
// that a restarted server with the same certificate makes the same tokens.
func resetKeyFor(c *Config) ([]byte, error) {
	if len(c.StatelessResetKey) > 0 {
		return c.StatelessResetKey, nil
	}
	if len(c.TLSConfig.Certificates) > 0 && c.TLSConfig.Certificates[0].PrivateKey != nil {
		der, err := x509.MarshalPKCS8PrivateKey(c.TLSConfig.Certificates[0].PrivateKey)
		if err == nil {
			h := hmac.New(sha256.New, []byte("tmp stateless reset key"))
			h.Write(der)
			return h.Sum(nil), nil
		}
	}
	// No stable secret: resets still work until this process restarts.
	k := make([]byte, 32)
	rand.Read(k)
	return k, nil
}

func (l *Listener) resetToken(id sessionID) []byte {
	h := hmac.New(sha256.New, l.resetKey)
	h.Write(id[:])
	return h.Sum(nil)[:statelessResetTokenLen]
}

// Addr returns the listening address.
func (l *Listener) Addr() net.Addr { return l.conn.LocalAddr() }

func (l *Listener) readLoop() {
	defer close(l.done)
	r := newPacketReader(l.conn, l.cfg.MaxPacketSize+1)
	for {
		err := r.read(l.dispatch)
		if err != nil {
			l.mu.Lock()
			closed := l.closed
			l.mu.Unlock()
			if closed {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			l.closeWith(err)
			return
		}
	}
}

func (l *Listener) dispatch(b []byte, addr net.Addr, at time.Time) {
	id, long, ok := peekSessionID(b)
	if !ok || len(b) > l.cfg.MaxPacketSize {
		return // not TMP, or larger than we allow (truncated by the read)
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	s := l.sessions[id]
	if s == nil {
		if !long {
			l.mu.Unlock()
			l.sendStatelessReset(id, len(b), addr)
			return
		}
		if len(b) < minPacketSize || b[0]&longTypeMask != packetInitial || l.pending >= l.cfg.MaxPendingHandshakes {
			l.mu.Unlock()
			return
		}
		s = newSession(l.cfg, false, l.conn, addr, id, l)
		l.sessions[id] = s
		l.pending++
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			s.run(l.ctx)
		}()
	}
	l.mu.Unlock()
	buf := append(getBuf(len(b)), b...)
	select {
	case s.recvCh <- datagram{buf, addr, at}:
	default:
		putBuf(buf) // the session is overloaded: drop, as a router would
		s.overloadDrops.Add(1)
	}
}

// sendStatelessReset answers a packet for an unknown session, so that a peer
// that still has state learns at once that we restarted (RFC 9000 §10.3). It
// is smaller than the packet that caused it, so it cannot loop or amplify,
// and rate-limited.
func (l *Listener) sendStatelessReset(id sessionID, size int, addr net.Addr) {
	// Smaller than the trigger (so resets cannot loop), yet shaped like a
	// short-header packet of the session: flags, session ID, random bytes,
	// token.
	const minReset = shortHdrLen + 1 + statelessResetTokenLen
	n := min(size-1, minReset+5)
	if n < minReset {
		return
	}
	l.resetMu.Lock()
	now := time.Now()
	l.resetTokens = min(100, l.resetTokens+now.Sub(l.resetLast).Seconds()*100)
	l.resetLast = now
	ok := l.resetTokens >= 1
	if ok {
		l.resetTokens--
	}
	l.resetMu.Unlock()
	if !ok {
		return
	}
	p := make([]byte, n)
	rand.Read(p[:n-statelessResetTokenLen])
	p[0] = flagFixed | (p[0] & 0x3f &^ flagLong)
	copy(p[1:1+sessionIDLen], id[:])
	copy(p[n-statelessResetTokenLen:], l.resetToken(id))
	l.conn.WriteTo(p, addr)
}

func (l *Listener) enqueue(s *Session) {
	l.mu.Lock()
	l.pending--
	l.queue = append(l.queue, s)
	l.mu.Unlock()
	signal(l.acceptSig)
}

func (l *Listener) remove(s *Session) {
	l.mu.Lock()
	if l.sessions[s.id] == s {
		delete(l.sessions, s.id)
		if !s.established {
			l.pending--
		}
	}
	l.mu.Unlock()
}

// Accept waits for the next session whose handshake completed.
func (l *Listener) Accept(ctx context.Context) (*Session, error) {
	for {
		l.mu.Lock()
		for len(l.queue) > 0 {
			s := l.queue[0]
			l.queue[0] = nil
			l.queue = l.queue[1:]
			if s.Err() == nil {
				l.mu.Unlock()
				return s, nil
			}
		}
		if l.closed {
			err := l.closeErr
			l.mu.Unlock()
			return nil, err
		}
		l.mu.Unlock()
		select {
		case <-l.acceptSig:
		case <-l.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Close closes every session (telling peers) and the listener. It returns
// once all of the listener's goroutines have ended.
func (l *Listener) Close() error {
	l.closeWith(ErrListenerClosed)
	l.wg.Wait()
	if l.ownsConn {
		l.conn.Close()
	} else {
		// Unblock the read loop without closing a socket we do not own.
		l.conn.SetReadDeadline(time.Unix(1, 0))
	}
	<-l.done
	return nil
}

func (l *Listener) closeWith(err error) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	l.closeErr = err
	l.mu.Unlock()
	l.cancel() // each session's run sends CLOSE and exits
	signal(l.acceptSig)
}

// Sessions returns the listener's established sessions.
func (l *Listener) Sessions() []*Session {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]*Session, 0, len(l.sessions))
	for _, s := range l.sessions {
		s.mu.Lock()
		ok := s.established && s.closeErr == nil
		s.mu.Unlock()
		if ok {
			out = append(out, s)
		}
	}
	return out
}
