package tmptransport

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
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
	gso      bool            // the socket takes UDP_SEGMENT batches (run goroutine only)
	rawConn  syscall.RawConn // the socket, for GSO's sendmsg; run goroutine only
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

	recvCh chan datagram
	// rxKey is the 1-RTT read key and phase for the socket's reader to
	// open packets with (openearly.go); nil until the handshake is done.
	rxKey      atomic.Pointer[readKey]
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
	hsp         hsProgress // handshake.go
	established bool       // TLS done, 1-RTT keys installed
	confirmed   bool       // peer known to have completed too
	tlsState    tls.ConnectionState
	peerParams  *transportParams
	resetToken  []byte // the server's stateless reset token (client side)
	keys        *appKeys
	maxPacket   int
	pmtu        pmtuSearch // path MTU discovery (pmtud.go); run goroutine, s.mu
	idleTimeout time.Duration

	// Reliability and congestion.
	lr          lossRecovery // recovery.go
	cc          CongestionController
	pace        pacer
	pacedUntil  time.Time
	lastRecv    time.Time
	lastSent    time.Time
	hsDoneQueue bool

	// Streams.
	blend     *blender
	runs      []packetRun // scratch for appendStreamDataLocked
	zstd      zstdPool    // compressed streams' encoders and decoders (zstdpool.go)
	lastStamp time.Time   // last packet that carried the send time
	tab       streamTable // streamtable.go
	ctrl      []*Stream
	blocked   []*Stream
	flows     int

	// Session flow control (flowcontrol.go).
	fc     receiveWindow
	sendFC sendWindow
	// sendBuffered is the bytes all streams' send buffers hold
	// (sendbuffer.go).
	sendBuffered int
	// sendingStreams counts streams with unacknowledged bytes
	// (noteSendingLocked).
	sendingStreams int
	// rxStream is the STREAM frame the frame parser decodes into, one
	// at a time (frames.go).
	rxStream streamFrame
	// rxAck likewise, for ACK frames.
	rxAck ackFrame
	// rxBuf is the buffer of the datagram being handled, until a stream's
	// receive buffer keeps it (recvBuffer.store); whoever holds it last
	// returns it to the pool.
	rxBuf []byte

	// Path validation (path.go).
	probe         *pathProbe
	pathResponses []pathResponse
	directed      []directedPacket // built under mu, written by run
	curFrom       net.Addr         // source of the datagram being handled

	lq linkQuality // quality.go

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
	streamsOpened                                                       uint64
	openedByReader                                                      uint64 // openearly.go
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
		hsp:        hsProgress{rto: 300 * time.Millisecond},
		tab:        newStreamTable(isClient, cfg.MaxIncomingStreams),
		blend:      newBlender(cfg.Weights, cfg.SubPacketSize),
		cc:         cfg.Congestion(),
		maxPacket:  cfg.BasePacketSize,
		flows:      1,
	}
	s.remote.Store(&remote)
	s.gso = gsoCapable(conn)
	s.lr.rtt.maxAckDelay = cfg.MaxAckDelay
	s.pace.maxBurst = float64(10 * cfg.BasePacketSize)
	s.pmtu.df = !cfg.NoPathMTUDiscovery && dontFragment(conn)
	s.fc = newReceiveWindow(cfg.InitialSessionWindow, cfg.MaxSessionWindow)
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
	// opened and pn: set when the reader already opened b (openearly.go).
	opened *packetKey
	pn     uint64
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
	// Service names the service the stream carries (ValidServiceName);
	// empty for HTTP. The peer reads it with Stream.Service.
	Service string
	// Source and Destination, if both set, are the addresses of the
	// connection the stream carries: its client's and where it arrived.
	// The peer reads them with Stream.ConnAddrs (a PROXY protocol header
	// for the origin, say).
	Source, Destination netip.AddrPort
}

const maxPacketsPerRound = 64

// Stats is a snapshot of a session's state, for both directions of the link.
type Stats struct {
	SmoothedRTT, RTTVariance, MinRTT, LatestRTT time.Duration

	CongestionWindow int // packets, with the room for late ACKs (ackroom.go)
	BytesInFlight    int
	PacingRate       float64 // bytes/s
	SlowStart        bool
	Flows            int // streams the congestion controller emulates

	// SendBuffered is what this end's streams wrote and the peer has not
	// acknowledged. SendWindow is what the peer's session window still
	// lets them send; ReceiveWindow is what this end's still lets the
	// peer send. A session whose streams hold data with SendWindow at 0
	// waits for the peer's MAX_DATA (flowcontrol.go).
	SendBuffered, SendWindow, ReceiveWindow int

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
	// PacketSize is the largest packet the session sends now: the base
	// size, or what path MTU discovery found (pmtud.go).
	PacketSize int

	// StreamBytesSent and StreamBytesReceived count new stream bytes by
	// priority (retransmissions excluded).
	StreamBytesSent, StreamBytesReceived [NumPriorities]uint64

	OpenStreams int
	// StreamsOpened counts the streams opened by either end so far.
	StreamsOpened uint64
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
		SmoothedRTT:         s.lr.rtt.srtt(),
		RTTVariance:         s.lr.rtt.variance,
		MinRTT:              s.lr.rtt.minRTT,
		LatestRTT:           s.lr.rtt.latest,
		CongestionWindow:    s.cc.Window(),
		BytesInFlight:       s.lr.sent.bytesInFlight,
		SendBuffered:        s.sendBuffered,
		SendWindow:          int(s.sendFC.left()),
		ReceiveWindow:       int(s.fc.left()),
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
		OpenStreams:         len(s.tab.streams),
		StreamsOpened:       s.counters.streamsOpened,
		PacketSize:          s.maxPacket,
		StreamBytesSent:     s.counters.sentByPriority,
		StreamBytesReceived: s.counters.receivedByPriority,
	}
	if s.keys != nil {
		st.KeyUpdates = s.keys.updates
	}
	st.RingSockets, st.RingReady = s.blend.ringStats()
	mine := &s.lq.mine.last
	peer := &s.lq.peer
	st.Inbound = DirectionStats{
		LossRate:        lossRate(mine),
		ReceiveRate:     perSecond(mine.BytesReceived, mine.Interval),
		DelayVariation:  mine.DelayVariation,
		SenderWindow:    int(peer.CongestionWindow),
		SenderRTT:       peer.SmoothedRTT,
		SendRate:        float64(peer.SendRate),
		UpdatedAt:       s.lq.peerAt,
		PacketsReceived: s.lq.mine.totalReceived,
		PacketsLost:     s.lq.mine.totalLost,
	}
	st.Outbound = DirectionStats{
		LossRate:        lossRate(peer),
		ReceiveRate:     perSecond(peer.BytesReceived, peer.Interval),
		DelayVariation:  peer.DelayVariation,
		SenderWindow:    s.cc.Window(),
		SenderRTT:       s.lr.rtt.srtt(),
		SendRate:        float64(mine.SendRate),
		UpdatedAt:       s.lq.peerAt,
		PacketsReceived: s.lq.peerRecv,
		PacketsLost:     s.lq.peerLost,
	}
	return st
}

func (s *Session) rttSnapshot() RTTSnapshot {
	return RTTSnapshot{Smoothed: s.lr.rtt.srtt(), Min: s.lr.rtt.minRTT, Latest: s.lr.rtt.latest}
}
