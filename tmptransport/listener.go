package tmptransport

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"net"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Listener accepts TMP sessions on one UDP socket and demultiplexes packets
// to them by session ID. One read goroutine serves all sessions.
//
// Everything the listener does for a packet before a handshake completes is
// O(1) and bounded (SPEC.md §5.1): the version and the token are checked
// before any allocation, half-open sessions are budgeted globally and per
// source prefix, and past the unvalidated budget an Initial without a token
// gets a stateless Retry.
type Listener struct {
	cfg      *Config
	conn     net.PacketConn
	ownsConn bool
	keys     *listenerKeys
	tokens   *tokenMinter // read loop only, besides its own lock
	counters *listenerCounters

	mu       sync.Mutex
	sessions map[sessionID]*Session
	admit    *admission
	refused  *tombstones // sessions refused before their handshake completed
	queue    []*Session
	closed   bool
	closeErr error

	acceptSig chan struct{}
	done      chan struct{}
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup

	resetLimit *rate.Limiter // stateless resets sent (read loop only)
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
	keys, err := newListenerKeys(c.NodeSecret, conn.LocalAddr().String())
	if err != nil {
		return nil, err
	}
	tuneSocket(conn)
	ctx, cancel := context.WithCancel(context.Background())
	l := &Listener{
		cfg:        c,
		conn:       conn,
		keys:       keys,
		tokens:     newTokenMinter(keys.token),
		counters:   newListenerCounters(c.Logger),
		sessions:   make(map[sessionID]*Session),
		admit:      newAdmission(c),
		refused:    newTombstones(4096),
		acceptSig:  make(chan struct{}, 1),
		done:       make(chan struct{}),
		ctx:        ctx,
		cancel:     cancel,
		resetLimit: rate.NewLimiter(100, 100),
	}
	go l.readLoop()
	return l, nil
}

// Addr returns the listening address.
func (l *Listener) Addr() net.Addr { return l.conn.LocalAddr() }

// Stats returns the listener's counters.
func (l *Listener) Stats() ListenerStats {
	c := l.counters
	st := ListenerStats{
		Refused:         make(map[Refusal]uint64, numRefusals),
		RetriesSent:     c.retries.Load(),
		ResetsSent:      c.resets.Load(),
		Handshakes:      c.accepted.Load(),
		DecryptFailures: c.decryptFailures.Load(),
		ReplaysDropped:  c.replays.Load(),
	}
	for _, r := range Refusals() {
		st.Refused[r] = c.refused[r].Load()
	}
	l.mu.Lock()
	st.HalfOpen = l.admit.pending()
	live := make([]*Session, 0, len(l.sessions))
	for _, s := range l.sessions {
		live = append(live, s)
	}
	l.mu.Unlock()
	for _, s := range live {
		s.mu.Lock()
		st.DecryptFailures += s.counters.decryptFailures
		st.ReplaysDropped += s.counters.replays
		s.mu.Unlock()
	}
	return st
}

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
		dead := l.refused.has(id)
		l.mu.Unlock()
		if dead {
			return
		}
		if !long {
			l.sendStatelessReset(id, len(b), addr)
			return
		}
		if s = l.open(b, id, addr); s == nil {
			return
		}
	} else {
		l.mu.Unlock()
	}
	buf := append(getBuf(len(b)), b...)
	select {
	case s.recvCh <- datagram{b: buf, addr: addr, at: at}:
	default:
		putBuf(buf) // the session is overloaded: drop, as a router would
		s.overloadDrops.Add(1)
	}
}

// open decides what a long-header packet for an unknown session gets: a new
// half-open session, a Retry, or nothing. Only a well-formed Initial of our
// version, padded to the minimum size, goes further than a header check.
func (l *Listener) open(b []byte, id sessionID, addr net.Addr) *Session {
	token, ok := peekInitial(b)
	if !ok {
		if len(b) >= 5 && b[0]&longTypeMask == packetInitial && binary.BigEndian.Uint32(b[1:5]) != Version {
			l.counters.refuse(RefusedVersion, addr, nil)
		}
		return nil
	}
	if len(b) < minPacketSize {
		return nil // RFC 9000 §14.1: an unpadded Initial is not a client's
	}
	validated := false
	if len(token) > 0 {
		if !l.tokens.valid(token, id, addr) {
			l.counters.refuse(RefusedInvalidToken, addr, nil)
			return nil
		}
		validated = true
	}
	prefix := sourcePrefix(addr)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || l.sessions[id] != nil {
		return l.sessions[id]
	}
	verdict, why := l.admit.decide(prefix, validated)
	switch verdict {
	case admitRetry:
		l.sendRetry(id, addr)
		return nil
	case admitDrop:
		l.counters.refuse(why, addr, nil)
		return nil
	}
	s := newSession(l.cfg, false, l.conn, addr, id, l)
	s.hsp.addrValidated = validated
	s.admittedValidated = validated
	s.prefix = prefix
	l.sessions[id] = s
	l.admit.add(prefix, validated)
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		s.run(l.ctx)
	}()
	return s
}

// sendRetry answers an Initial with a Retry carrying a token for its
// session ID and source address (SPEC.md §5.1). The Retry is a few dozen
// bytes against the Initial's 1200: it cannot amplify.
func (l *Listener) sendRetry(id sessionID, addr net.Addr) {
	tok := l.tokens.mint(id, addr)
	if tok == nil {
		return
	}
	var buf [1 + 4 + sessionIDLen + tokenLen]byte
	l.conn.WriteTo(appendRetry(buf[:0], id, tok), addr)
	l.counters.retries.Add(1)
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
	if n < minReset || !l.resetLimit.Allow() {
		return
	}
	p := make([]byte, n)
	rand.Read(p[:n-statelessResetTokenLen])
	p[0] = flagFixed | (p[0] & 0x3f &^ flagLong)
	copy(p[1:1+sessionIDLen], id[:])
	copy(p[n-statelessResetTokenLen:], l.keys.resetToken(id))
	l.conn.WriteTo(p, addr)
	l.counters.resets.Add(1)
}

func (l *Listener) enqueue(s *Session) {
	l.mu.Lock()
	l.admit.done(s.prefix, s.admittedValidated)
	l.queue = append(l.queue, s)
	l.mu.Unlock()
	l.counters.accepted.Add(1)
	signal(l.acceptSig)
}

// remove forgets an ended session; one that never completed its handshake
// is counted and logged as refused, with its reason.
func (l *Listener) remove(s *Session, established bool, err error, decryptFailures, replays uint64) {
	l.mu.Lock()
	if l.sessions[s.id] == s {
		delete(l.sessions, s.id)
		if !established {
			l.admit.done(s.prefix, s.admittedValidated)
			l.refused.add(s.id)
		}
	}
	l.mu.Unlock()
	l.counters.decryptFailures.Add(decryptFailures)
	l.counters.replays.Add(replays)
	if !established && !errors.Is(err, errListenerClosing) {
		l.counters.refuse(refusalOf(err), s.RemoteAddr(), err)
	}
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
