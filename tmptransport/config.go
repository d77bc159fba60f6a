package tmptransport

import (
	"crypto/tls"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"
)

// Config configures a TMP endpoint. The zero value of every field but
// TLSConfig selects a documented default.
type Config struct {
	// TLSConfig authenticates both ends (TLS 1.3, mutual: a server requires
	// client certificates unless InsecureAllowUnauthenticatedClients is set).
	// Certificates can come from any X.509 PKI, Caddy's included.
	TLSConfig *tls.Config

	// BasePacketSize is the UDP payload a session starts with, and falls
	// back to. Default 1452, which fits a 1500-byte MTU under IPv6 (40) and
	// UDP (8) headers without IP fragmentation; minimum 1200 (the QUIC
	// floor, RFC 9000 §14).
	BasePacketSize int
	// MaxPacketSize is the largest UDP payload a session may grow to, and
	// the largest it accepts (a transport parameter). Packets grow by path
	// MTU discovery (DPLPMTUD, RFC 8899, pmtud.go): a LAN with jumbo
	// frames, or loopback, carries larger packets, and every packet costs
	// the same work whatever its size. Default 16384, where the proxy
	// benchmark on loopback peaks (8192: 509 req/s of 1 MB bodies,
	// 16384: 531, 32000: 463; 1452: 364).
	MaxPacketSize int
	// NoPathMTUDiscovery keeps every packet at BasePacketSize.
	NoPathMTUDiscovery bool
	// SubPacketSize is the largest stream sub-packet the blender takes in one
	// pick. Default 512, the seed's figure.
	SubPacketSize int
	// Weights are the blender's per-priority weights. Default DefaultWeights.
	Weights [NumPriorities]int

	// MaxIncomingStreams is how many peer-opened streams may be open at once.
	// Default 4096.
	MaxIncomingStreams int
	// InitialStreamWindow and MaxStreamWindow bound a stream's receive window
	// (auto-tuned between them). Defaults 256 KiB and 8 MiB.
	InitialStreamWindow, MaxStreamWindow int
	// InitialSessionWindow and MaxSessionWindow bound the session's receive
	// window. Defaults 1 MiB and 32 MiB. These are hard limits on what a peer
	// can make us buffer.
	InitialSessionWindow, MaxSessionWindow int
	// SendBufferSize is the unacknowledged bytes a stream may always buffer
	// before Write blocks. Default 1 MiB. A stream whose peer allows more
	// in flight (its receive window grew, as the path needs more than that)
	// may buffer up to that window, at most MaxSendBufferSize, while the
	// session's streams together hold less than MaxSessionSendBuffer
	// (sendbuffer.go). Defaults 8 MiB and 32 MiB, as the receive windows.
	SendBufferSize, MaxSendBufferSize, MaxSessionSendBuffer int

	// HandshakeTimeout bounds one dial attempt. Default 10 s.
	HandshakeTimeout time.Duration
	// DialAttempts is how many times Dial tries before giving up. Default 3.
	DialAttempts int
	// IdleTimeout closes a session that receives nothing. Default 30 s.
	IdleTimeout time.Duration
	// KeepAlivePeriod sends a PING when nothing was sent for that long.
	// Default IdleTimeout/3; negative disables.
	KeepAlivePeriod time.Duration
	// DrainTimeout bounds the graceful Close. Default 5 s.
	DrainTimeout time.Duration
	// MaxAckDelay is how long a receiver may delay an ACK. Default 10 ms.
	MaxAckDelay time.Duration
	// LinkQualityInterval is how often each end reports its receive-side
	// measurements. Default 1 s.
	LinkQualityInterval time.Duration

	// Congestion builds the session's congestion controller. Default
	// MulTCP with InitialWindow packets.
	Congestion func() CongestionController
	// InitialWindow is the initial congestion window in packets. Default 32.
	InitialWindow int
	// MaxEmulatedFlows caps N for the multi-flow controller. Default 64.
	MaxEmulatedFlows int

	// NoUrgentDuplication turns off the duplicate sending of priority-0
	// stream data. By default each packet carrying priority-0 data is
	// followed by a copy of that data, so that a single loss costs urgent
	// requests no retransmission round trip: urgent traffic is small by
	// nature (a checkout, not a download), and its latency is what the
	// priorities are for.
	NoUrgentDuplication bool

	// KeyUpdateInterval is how many packets are sealed under one key before
	// the sender rotates keys (RFC 9001 §6). Default 1<<20, well inside the
	// AES-GCM confidentiality limit of 2^23 (RFC 9001 §6.6); a larger value
	// is capped at half the negotiated suite's limit.
	KeyUpdateInterval uint64

	// NodeSecret is the node's long-term secret. Each listener derives its
	// stateless-reset and address-validation token keys from it, its own
	// address and the purpose (HKDF; listenerkeys.go). Keep it stable across
	// restarts so that front-ends learn of a restart at once, and distinct
	// per node. Default: random per listener.
	NodeSecret []byte

	// MaxPendingHandshakes bounds half-open sessions on a listener. Default 256.
	MaxPendingHandshakes int
	// RetryThreshold is how many half-open sessions from unvalidated
	// addresses a listener keeps before it answers every Initial without a
	// token with a stateless Retry (SPEC.md §5.1). Default
	// MaxPendingHandshakes/4; negative: always send a Retry.
	RetryThreshold int
	// MaxPendingPerPrefix bounds half-open sessions per source prefix (/24
	// for IPv4, /56 for IPv6), counted apart for unvalidated addresses
	// (past it: Retry) and validated ones (past it: dropped). Default 32.
	MaxPendingPerPrefix int

	// Logger, if set, gets a counted, rate-limited line for each reason a
	// handshake is refused (at most one a second per reason).
	Logger *zap.Logger

	// InsecureAllowUnauthenticatedClients lets a server accept clients that
	// present no certificate. Only for tests and closed networks.
	InsecureAllowUnauthenticatedClients bool
}

// ALPN is the TLS application protocol TMP negotiates.
const ALPN = "tmp/1"

func (c *Config) withDefaults(server bool) (*Config, error) {
	if c == nil || c.TLSConfig == nil {
		return nil, errors.New("tmp: Config.TLSConfig is required")
	}
	n := *c
	t := c.TLSConfig.Clone()
	t.MinVersion = tls.VersionTLS13
	if len(t.NextProtos) == 0 {
		t.NextProtos = []string{ALPN}
	}
	if server && t.ClientAuth != tls.RequireAndVerifyClientCert && !c.InsecureAllowUnauthenticatedClients {
		// RequireAnyClientCert takes any certificate, signed by anyone: that
		// is not mutual authentication.
		return nil, fmt.Errorf("tmp: server TLSConfig.ClientAuth is %v; TMP needs RequireAndVerifyClientCert (mutual authentication), or InsecureAllowUnauthenticatedClients for tests", t.ClientAuth)
	}
	n.TLSConfig = t
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defD := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&n.BasePacketSize, 1452)
	def(&n.MaxPacketSize, max(16384, n.BasePacketSize))
	def(&n.SubPacketSize, 512)
	if n.Weights == ([NumPriorities]int{}) {
		n.Weights = DefaultWeights
	}
	def(&n.MaxIncomingStreams, 4096)
	def(&n.InitialStreamWindow, 256<<10)
	def(&n.MaxStreamWindow, 8<<20)
	def(&n.InitialSessionWindow, 1<<20)
	def(&n.MaxSessionWindow, 32<<20)
	def(&n.SendBufferSize, 1<<20)
	def(&n.MaxSendBufferSize, max(n.SendBufferSize, 8<<20))
	def(&n.MaxSessionSendBuffer, max(n.MaxSendBufferSize, 32<<20))
	defD(&n.HandshakeTimeout, 10*time.Second)
	def(&n.DialAttempts, 3)
	defD(&n.IdleTimeout, 30*time.Second)
	defD(&n.KeepAlivePeriod, n.IdleTimeout/3)
	defD(&n.DrainTimeout, 5*time.Second)
	defD(&n.MaxAckDelay, 10*time.Millisecond)
	defD(&n.LinkQualityInterval, time.Second)
	def(&n.InitialWindow, 32)
	def(&n.MaxEmulatedFlows, 64)
	def(&n.MaxPendingHandshakes, 256)
	def(&n.RetryThreshold, max(n.MaxPendingHandshakes/4, 1))
	def(&n.MaxPendingPerPrefix, 32)
	if n.KeyUpdateInterval == 0 {
		n.KeyUpdateInterval = 1 << 20
	}
	if n.Congestion == nil {
		iw, mf := n.InitialWindow, n.MaxEmulatedFlows
		n.Congestion = func() CongestionController { return NewMulTCP(iw, mf, 1<<16) }
	}
	switch {
	case n.MaxPacketSize < minPacketSize || n.MaxPacketSize > maxPacketSizeLimit:
		return nil, fmt.Errorf("tmp: MaxPacketSize %d out of range [%d, %d]", n.MaxPacketSize, minPacketSize, maxPacketSizeLimit)
	case n.BasePacketSize < minPacketSize || n.BasePacketSize > n.MaxPacketSize:
		return nil, fmt.Errorf("tmp: BasePacketSize %d out of range [%d, MaxPacketSize %d]", n.BasePacketSize, minPacketSize, n.MaxPacketSize)
	case n.SubPacketSize < 64 || n.SubPacketSize > n.BasePacketSize-shortHdrLen-aeadOverhead-16:
		return nil, fmt.Errorf("tmp: SubPacketSize %d out of range [64, %d]", n.SubPacketSize, n.BasePacketSize-shortHdrLen-aeadOverhead-16)
	case n.InitialStreamWindow > n.MaxStreamWindow || n.InitialSessionWindow > n.MaxSessionWindow:
		return nil, errors.New("tmp: initial window larger than maximum window")
	case n.SendBufferSize > n.MaxSendBufferSize || n.MaxSendBufferSize > n.MaxSessionSendBuffer:
		return nil, errors.New("tmp: SendBufferSize ≤ MaxSendBufferSize ≤ MaxSessionSendBuffer does not hold")
	case n.MaxIncomingStreams < 0 || n.MaxIncomingStreams > 1<<20:
		return nil, fmt.Errorf("tmp: MaxIncomingStreams %d out of range [0, %d]", n.MaxIncomingStreams, 1<<20)
	}
	for p, w := range n.Weights {
		if w <= 0 || w > 1<<16 {
			return nil, fmt.Errorf("tmp: weight of priority %d is %d; weights must be in [1, 65536] so that no priority starves", p, w)
		}
	}
	return &n, nil
}

func (c *Config) transportParams() *transportParams {
	return &transportParams{
		InitialMaxStreamData: uint64(c.InitialStreamWindow),
		InitialMaxData:       uint64(c.InitialSessionWindow),
		MaxStreams:           uint64(c.MaxIncomingStreams),
		MaxPacketSize:        uint64(c.MaxPacketSize),
		IdleTimeout:          c.IdleTimeout,
		MaxAckDelay:          c.MaxAckDelay,
		StreamMore:           true,
	}
}
