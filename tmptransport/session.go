package tmptransport

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Session is one TMP link between a front-end and a back-end: a long-lived,
// encrypted, multiplexed connection over UDP carrying many streams. One
// goroutine (run) owns the timers and the socket writes; stream calls and the
// receive path share the session lock.
type Session struct {
	cfg      *Config
	isClient bool
	id       sessionID
	conn     net.PacketConn
	connectd bool // conn is a connected UDP socket: use Write
	ownsConn bool
	gso      bool   // the socket takes UDP_SEGMENT batches (run goroutine only)
	gsoBuf   []byte // run goroutine only
	remote   atomic.Pointer[net.Addr]
	// refusedAt is when the socket last reported ICMP port unreachable
	// (unix ns; dialer only).
	refusedAt atomic.Int64
	// overloadDrops counts datagrams dropped because run fell behind.
	overloadDrops atomic.Uint64
	listener      *Listener
	// Server side: the source prefix the listener counts this half-open
	// session in, and whether it was admitted with a valid token.
	prefix            netip.Prefix
	admittedValidated bool

	recvCh     chan datagram
	wake       chan struct{}
	closed     chan struct{} // closed when the session is dead
	done       chan struct{} // closed when run has returned
	readerGone chan struct{} // dialer only: closed when run and readLoop have returned
	hsDone     chan struct{} // closed when the handshake succeeded or failed
	acceptSig  chan struct{}
	openSig    chan struct{}
	ctx        context.Context
	cancel     context.CancelFunc

	// creditMu guards creditQ and each stream's creditBytes/creditQueued:
	// readers hand over what they consumed without the session lock.
	creditMu sync.Mutex
	creditQ  []*Stream

	mu sync.Mutex
	// Handshake.
	hs          *handshake
	hsPN        uint64
	hsRTO       time.Duration
	hsNext      time.Time
	hsResendNow bool
	hsSent      [2]int
	hsRecvBytes int
	hsSentBytes int
	hsDeadline  time.Time
	// addrValidated (server): the client proved it receives at its address,
	// by a Retry token or a Handshake packet; until then the 3× limit holds.
	addrValidated bool
	retried       bool   // client: a Retry was followed (only one is)
	retryToken    []byte // client: the token every later Initial carries
	pendingHS     [][]byte
	pendingApp    [][]byte
	established   bool // TLS done, 1-RTT keys installed
	confirmed     bool // peer known to have completed too
	tlsState      tls.ConnectionState
	peerParams    *transportParams
	resetToken    []byte // the server's stateless reset token (client side)
	keys          *appKeys
	maxPacket     int
	idleTimeout   time.Duration

	// Reliability and congestion.
	pn          uint64
	sent        sentHistory
	recv        receivedTracker
	rtt         rttStats
	cc          CongestionController
	pace        pacer
	pacedUntil  time.Time
	ptoCount    int
	probes      int
	lastAESent  time.Time // last ack-eliciting packet sent
	lastRecv    time.Time
	lastSent    time.Time
	pingQueued  bool
	dupCredit   int         // bytes of urgent copies that may be sent (urgentCopy)
	dupPending  []sentFrame // urgent frames whose copy waits for the window
	hsDoneQueue bool

	// Streams.
	blend          *blender
	runs           []packetRun // scratch for appendStreamData
	lastStamp      time.Time   // last packet that carried the send time
	streams        map[uint64]*Stream
	nextLocalID    uint64
	openedLocal    uint64
	peerMaxStreams uint64
	maxStreamsAdv  uint64
	closedPeer     rangeSet
	closedPeerN    uint64
	maxStreamsQ    bool
	acceptQ        []*Stream
	ctrl           []*Stream
	blocked        []*Stream
	flows          int

	// Session flow control.
	peerMaxData uint64
	sentData    uint64
	recvMax     uint64
	recvTotal   uint64
	consumed    uint64
	recvWindow  uint64
	lastMaxData time.Time
	maxDataQ    bool

	// Path validation (path.go).
	probe         *pathProbe
	pathResponses []pathResponse
	directed      []directedPacket // built under mu, written by run
	curFrom       net.Addr         // source of the datagram being handled

	// Link quality.
	quality     qualityMeter
	peerQuality linkQualityFrame
	peerQAt     time.Time
	peerQRecv   uint64 // totals of the peer's reports
	peerQLost   uint64
	nextQuality time.Time
	qualityQ    bool

	counters counters

	// Closing.
	draining   bool
	closeErr   error
	closeFrame *closeFrame
	dead       bool
}

type counters struct {
	packetsSent, packetsReceived, packetsLost, bytesSent, bytesReceived uint64
	retransmittedBytes, streamBytesSent, urgentCopyBytes, migrations    uint64
	sentByPriority, receivedByPriority                                  [NumPriorities]uint64
	decryptFailures, replays, malformed                                 uint64
}

func newSession(cfg *Config, isClient bool, conn net.PacketConn, remote net.Addr, id sessionID, l *Listener) *Session {
	ctx, cancel := context.WithCancel(context.Background())
	s := &Session{
		cfg:        cfg,
		isClient:   isClient,
		id:         id,
		conn:       conn,
		recvCh:     make(chan datagram, 1024),
		listener:   l,
		wake:       make(chan struct{}, 1),
		closed:     make(chan struct{}),
		done:       make(chan struct{}),
		readerGone: make(chan struct{}),
		hsDone:     make(chan struct{}),
		acceptSig:  make(chan struct{}, 1),
		openSig:    make(chan struct{}, 1),
		ctx:        ctx,
		cancel:     cancel,
		hsRTO:      300 * time.Millisecond,
		streams:    make(map[uint64]*Stream),
		blend:      newBlender(cfg.Weights, cfg.SubPacketSize),
		cc:         cfg.Congestion(),
		maxPacket:  cfg.MaxPacketSize,
		flows:      1,
	}
	s.remote.Store(&remote)
	s.gso = gsoCapable(conn)
	if !isClient {
		s.nextLocalID = 1
	}
	s.rtt.maxAckDelay = cfg.MaxAckDelay
	s.pace.maxBurst = float64(10 * cfg.MaxPacketSize)
	s.recvWindow = uint64(cfg.InitialSessionWindow)
	s.recvMax = s.recvWindow
	s.maxStreamsAdv = uint64(cfg.MaxIncomingStreams)
	s.idleTimeout = cfg.IdleTimeout
	s.hs = newHandshake(isClient, cfg.TLSConfig, s.ownParams())
	return s
}

func (s *Session) ownParams() *transportParams {
	p := s.cfg.transportParams()
	if !s.isClient && s.listener != nil {
		p.StatelessResetToken = s.listener.keys.resetToken(s.id)
	}
	return p
}

// datagram is one received UDP payload and where it came from.
type datagram struct {
	b    []byte
	addr net.Addr
	at   time.Time // when it was read from the socket
}

func newSessionID() sessionID {
	var id sessionID
	rand.Read(id[:])
	return id
}

// LocalAddr returns the local UDP address.
func (s *Session) LocalAddr() net.Addr { return s.conn.LocalAddr() }

// RemoteAddr returns the peer's UDP address (it follows NAT rebinding).
func (s *Session) RemoteAddr() net.Addr { return *s.remote.Load() }

// ConnectionState returns the TLS state of the completed handshake,
// including the peer's verified certificates.
func (s *Session) ConnectionState() tls.ConnectionState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tlsState
}

// Context is cancelled when the session ends.
func (s *Session) Context() context.Context { return s.ctx }

// Done is closed when the session is dead.
func (s *Session) Done() <-chan struct{} { return s.closed }

// Err returns why the session ended, or nil while it is alive.
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dead {
		return s.closeErr
	}
	return nil
}

func (s *Session) wakeLocked() { signal(s.wake) }

// OpenStreamOptions configures a new stream.
type OpenStreamOptions struct {
	Priority Priority
	// Compress turns on zstd for both directions of the stream.
	Compress bool
}

// OpenStream opens a stream with the given priority (0 most urgent). It
// blocks while the peer's stream limit is reached.
func (s *Session) OpenStream(ctx context.Context, prio Priority) (*Stream, error) {
	return s.OpenStreamOptions(ctx, OpenStreamOptions{Priority: prio})
}

// OpenStreamOptions opens a stream with options.
func (s *Session) OpenStreamOptions(ctx context.Context, o OpenStreamOptions) (*Stream, error) {
	if o.Priority >= NumPriorities {
		return nil, ErrInvalidPriority
	}
	for {
		s.mu.Lock()
		if s.closeErr != nil {
			err := s.closeErr
			s.mu.Unlock()
			return nil, err
		}
		if s.draining {
			s.mu.Unlock()
			return nil, ErrSessionClosing
		}
		if !s.established {
			s.mu.Unlock()
			return nil, ErrHandshakeTimeout
		}
		if s.openedLocal < s.peerMaxStreams {
			st := newStream(s, s.nextLocalID, o.Priority, true)
			st.compress = o.Compress
			st.openQueued = true
			s.nextLocalID += 2
			s.openedLocal++
			s.streams[st.id] = st
			s.blend.add(&st.entry)
			s.queueStreamControl(st)
			s.updateFlowsLocked()
			s.wakeLocked()
			s.mu.Unlock()
			return st, nil
		}
		s.mu.Unlock()
		select {
		case <-s.openSig:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-s.closed:
		}
	}
}

// AcceptStream waits for the next stream the peer opens.
func (s *Session) AcceptStream(ctx context.Context) (*Stream, error) {
	for {
		s.mu.Lock()
		if len(s.acceptQ) > 0 {
			st := s.acceptQ[0]
			s.acceptQ[0] = nil
			s.acceptQ = s.acceptQ[1:]
			s.mu.Unlock()
			return st, nil
		}
		if s.closeErr != nil {
			err := s.closeErr
			s.mu.Unlock()
			return nil, err
		}
		s.mu.Unlock()
		select {
		case <-s.acceptSig:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-s.closed:
		}
	}
}

// Close closes the session gracefully: no new streams are opened or
// accepted, open streams drain (up to Config.DrainTimeout), then a CLOSE
// frame tells the peer.
func (s *Session) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.DrainTimeout)
	defer cancel()
	return s.Shutdown(ctx)
}

// Shutdown is Close with a caller-chosen drain deadline.
func (s *Session) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.draining = true
	s.mu.Unlock()
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		s.mu.Lock()
		n := len(s.streams)
		dead := s.dead
		s.mu.Unlock()
		if n == 0 || dead {
			break
		}
		select {
		case <-ctx.Done():
			return s.CloseWithError(NoError, "drain timeout")
		case <-s.closed:
		case <-t.C:
		}
	}
	return s.CloseWithError(NoError, "")
}

// CloseWithError closes the session at once, telling the peer the code and
// reason. Streams fail with a SessionError.
func (s *Session) CloseWithError(code ErrorCode, reason string) error {
	s.mu.Lock()
	if s.closeErr == nil {
		if len(reason) > maxReasonLength {
			reason = reason[:maxReasonLength]
		}
		s.closeErr = &SessionError{Code: code, Reason: reason}
		s.closeFrame = &closeFrame{Code: code, Reason: reason}
	}
	s.wakeLocked()
	s.mu.Unlock()
	<-s.done
	if s.isClient {
		<-s.readerGone
	}
	return nil
}

// closeLocked ends the session because of err; frame, if set, is sent.
func (s *Session) closeLocked(err error, sendClose bool) {
	if s.closeErr != nil {
		return
	}
	s.closeErr = err
	if sendClose {
		cf := &closeFrame{Code: InternalError, Reason: err.Error()}
		if pe, ok := err.(*protoError); ok {
			cf.Code = pe.code
		} else if se, ok := err.(*SessionError); ok {
			cf.Code, cf.Reason = se.Code, se.Reason
		}
		if len(cf.Reason) > maxReasonLength {
			cf.Reason = cf.Reason[:maxReasonLength]
		}
		if !s.established {
			// Before the handshake completes the CLOSE travels in clear to
			// a peer not yet authenticated: the code says enough, and
			// the reason (which certificate was refused, and why) is for
			// our own log.
			cf.Reason = ""
		}
		s.closeFrame = cf
	} else {
		s.dead = true
	}
	s.wakeLocked()
}

// run is the session's goroutine. It owns timers and socket writes.
func (s *Session) run(ctx context.Context) {
	defer close(s.done)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	s.mu.Lock()
	now := time.Now()
	s.lastRecv = now
	s.hsDeadline = now.Add(s.cfg.HandshakeTimeout)
	s.quality.start = now
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

// teardown releases everything once the session is dead.
func (s *Session) teardown() {
	s.mu.Lock()
	if s.closeErr == nil {
		s.closeErr = &SessionError{Code: InternalError, Reason: "session ended"}
	}
	hs := s.hs
	s.hs = nil
	for _, st := range s.streams {
		signal(st.readCh)
		signal(st.writeCh)
	}
	s.mu.Unlock()
	if hs != nil {
		hs.close()
	}
	close(s.closed)
	select {
	case <-s.hsDone:
	default:
		close(s.hsDone)
	}
	s.cancel()
	if s.listener != nil {
		s.mu.Lock()
		established, err := s.established, s.closeErr
		df, rp := s.counters.decryptFailures, s.counters.replays
		s.mu.Unlock()
		s.listener.remove(s, established, err, df, rp)
	}
	if s.ownsConn {
		s.conn.Close()
	}
}

const maxPacketsPerRound = 64

// onTimersLocked fires whatever timer has expired.
func (s *Session) onTimersLocked(now time.Time) {
	if s.dead || s.closeFrame != nil {
		return
	}
	if r := s.refusedAt.Load(); r != 0 && s.peerUnreachable(now, time.Unix(0, r)) {
		s.closeLocked(ErrPeerUnreachable, false)
		return
	}
	if !s.established && now.After(s.hsDeadline) {
		s.closeLocked(ErrHandshakeTimeout, false)
		return
	}
	if now.Sub(s.lastRecv) > s.idleTimeout {
		s.closeLocked(&SessionError{Code: IdleTimeout, Reason: "no packets received for " + s.idleTimeout.String()}, false)
		return
	}
	if !s.established || (s.isClient && !s.confirmed) {
		if !s.hsNext.IsZero() && !now.Before(s.hsNext) {
			s.hsResendNow = true
			s.hsRTO = min(2*s.hsRTO, 3*time.Second)
		}
	}
	if !s.established {
		return
	}
	if !s.sent.lossTime.IsZero() && !now.Before(s.sent.lossTime) {
		s.detectLossLocked(now)
	}
	if t := s.ptoTime(); !t.IsZero() && !now.Before(t) {
		s.onPTOLocked(now)
	}
	if t := s.keepAliveAt(); !t.IsZero() && !now.Before(t) {
		s.pingQueued = true
	}
	if !now.Before(s.nextQuality) && s.confirmed {
		s.nextQuality = now.Add(s.cfg.LinkQualityInterval)
		s.qualityQ = true
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
	return max(3*s.rtt.pto(), 200*time.Millisecond)
}

func (s *Session) ptoTime() time.Time {
	if s.sent.bytesInFlight <= 0 {
		return time.Time{}
	}
	return s.lastAESent.Add(s.rtt.pto() << min(s.ptoCount, 6))
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
		set(s.hsDeadline)
	}
	if !s.established || (s.isClient && !s.confirmed) {
		set(s.hsNext)
	}
	if !s.established {
		return next
	}
	set(s.sent.lossTime)
	set(s.nextPathTimer())
	set(s.ptoTime())
	set(s.recv.ackDeadline)
	if s.pacedUntil.After(now) {
		// A past pacing deadline (the window closed after it was set)
		// must not wake run in a loop.
		set(s.pacedUntil)
	}
	set(s.nextQuality)
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
	if ka <= 0 || s.pingQueued {
		return time.Time{}
	}
	t := s.lastAESent.Add(ka)
	if r := s.lastRecv.Add(ka / 2); r.After(t) {
		t = r
	}
	return t
}

// handleBacklog handles d and up to 64 more datagrams already waiting.
func (s *Session) handleBacklog(d datagram) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.handleDatagram(d)
	for i := 0; i < 64; i++ {
		select {
		case d = <-s.recvCh:
			s.handleDatagram(d)
		default:
			return
		}
	}
}

// updateFlowsLocked tells the controller how many streams are active: the
// number of streams it is hosting (seed: "When a new TCP connection is added
// to the TMP connection, the TMP connection becomes more aggressive").
func (s *Session) updateFlowsLocked() {
	n := max(len(s.streams), 1)
	if n != s.flows {
		s.flows = n
		s.cc.SetFlows(n)
	}
}

// Stats is a snapshot of a session's state, for both directions of the link.
type Stats struct {
	SmoothedRTT, RTTVariance, MinRTT, LatestRTT time.Duration

	CongestionWindow int // packets
	BytesInFlight    int
	PacingRate       float64 // bytes/s
	SlowStart        bool
	Flows            int // streams the congestion controller emulates

	// Outbound is this end → peer; Inbound is peer → this end.
	Outbound, Inbound DirectionStats

	PacketsSent, PacketsReceived, PacketsLost uint64
	BytesSent, BytesReceived                  uint64
	RetransmittedBytes                        uint64
	UrgentCopyBytes                           uint64 // bytes of packets that repeat urgent data
	Migrations                                uint64 // moves to a validated new peer address
	DecryptFailures, ReplaysDropped           uint64
	OverloadDrops                             uint64 // received but dropped: the session fell behind
	KeyUpdates                                uint64

	// StreamBytesSent and StreamBytesReceived count new stream bytes by
	// priority (retransmissions excluded).
	StreamBytesSent, StreamBytesReceived [NumPriorities]uint64

	OpenStreams int
	// RingSockets and RingReady are the blender's nSockets and nReady per
	// priority.
	RingSockets, RingReady [NumPriorities]int
}

// Stats returns a snapshot of the session's measurements.
func (s *Session) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	snap := s.rttSnapshot()
	st := Stats{
		SmoothedRTT:         s.rtt.srtt(),
		RTTVariance:         s.rtt.variance,
		MinRTT:              s.rtt.minRTT,
		LatestRTT:           s.rtt.latest,
		CongestionWindow:    s.cc.Window(),
		BytesInFlight:       s.sent.bytesInFlight,
		PacingRate:          s.cc.PacingRate(&snap, s.maxPacket),
		SlowStart:           s.cc.InSlowStart(),
		Flows:               s.flows,
		PacketsSent:         s.counters.packetsSent,
		PacketsReceived:     s.counters.packetsReceived,
		PacketsLost:         s.counters.packetsLost,
		BytesSent:           s.counters.bytesSent,
		BytesReceived:       s.counters.bytesReceived,
		RetransmittedBytes:  s.counters.retransmittedBytes,
		UrgentCopyBytes:     s.counters.urgentCopyBytes,
		Migrations:          s.counters.migrations,
		DecryptFailures:     s.counters.decryptFailures,
		ReplaysDropped:      s.counters.replays,
		OverloadDrops:       s.overloadDrops.Load(),
		OpenStreams:         len(s.streams),
		StreamBytesSent:     s.counters.sentByPriority,
		StreamBytesReceived: s.counters.receivedByPriority,
	}
	if s.keys != nil {
		st.KeyUpdates = s.keys.updates
	}
	st.RingSockets, st.RingReady = s.blend.ringStats()
	mine := &s.quality.last
	peer := &s.peerQuality
	st.Inbound = DirectionStats{
		LossRate:        lossRate(mine),
		ReceiveRate:     perSecond(mine.BytesReceived, mine.Interval),
		DelayVariation:  mine.DelayVariation,
		SenderWindow:    int(peer.CongestionWindow),
		SenderRTT:       peer.SmoothedRTT,
		SendRate:        float64(peer.SendRate),
		UpdatedAt:       s.peerQAt,
		PacketsReceived: s.quality.totalReceived,
		PacketsLost:     s.quality.totalLost,
	}
	st.Outbound = DirectionStats{
		LossRate:        lossRate(peer),
		ReceiveRate:     perSecond(peer.BytesReceived, peer.Interval),
		DelayVariation:  peer.DelayVariation,
		SenderWindow:    s.cc.Window(),
		SenderRTT:       s.rtt.srtt(),
		SendRate:        float64(mine.SendRate),
		UpdatedAt:       s.peerQAt,
		PacketsReceived: s.peerQRecv,
		PacketsLost:     s.peerQLost,
	}
	return st
}

func (s *Session) rttSnapshot() RTTSnapshot {
	return RTTSnapshot{Smoothed: s.rtt.srtt(), Min: s.rtt.minRTT, Latest: s.rtt.latest}
}
