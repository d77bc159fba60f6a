package tmptransport

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"golang.org/x/time/rate"
)

// Refusal is why a listener refused a handshake or dropped the packet that
// would have started one.
type Refusal int

// The reasons a handshake is refused. Their names are the `reason` label of
// the conductor_tmp_handshakes_refused_total metric.
const (
	RefusedVersion       Refusal = iota + 1 // an Initial of another wire version
	RefusedInvalidToken                     // a token that is forged, expired or for another address
	RefusedHalfOpenLimit                    // MaxPendingHandshakes reached by validated sources
	RefusedPrefixLimit                      // MaxPendingPerPrefix reached by validated sources of one prefix
	RefusedCryptoLimit                      // CRYPTO reassembly past its byte or gap cap
	RefusedTLS                              // TLS failed: a certificate refused, an alert
	RefusedTimeout                          // no handshake within HandshakeTimeout
	RefusedProtocol                         // malformed handshake packets, or the peer gave up
	numRefusals
)

var refusalNames = [numRefusals]string{"", "version", "invalid_token", "half_open_limit", "prefix_limit", "crypto_limit", "tls", "timeout", "protocol"}

func (r Refusal) String() string {
	if r <= 0 || r >= numRefusals {
		return "unknown"
	}
	return refusalNames[r]
}

// Refusals lists every reason, for exporting each as a metric series.
func Refusals() []Refusal {
	out := make([]Refusal, 0, numRefusals-1)
	for r := Refusal(1); r < numRefusals; r++ {
		out = append(out, r)
	}
	return out
}

// The errors that end a half-open session when its CRYPTO reassembly
// passes a cap (handshake.go).
var (
	errCryptoBuffer = &protoError{code: HandshakeFailure, msg: "handshake data beyond 64 KiB"}
	errCryptoRanges = &protoError{code: HandshakeFailure, msg: "handshake data in too many pieces"}
)

// refusalOf classifies why a server-side session ended before its handshake
// completed.
func refusalOf(err error) Refusal {
	var se *SessionError
	switch {
	case errors.Is(err, ErrHandshakeTimeout):
		return RefusedTimeout
	case err == error(errCryptoBuffer) || err == error(errCryptoRanges):
		return RefusedCryptoLimit
	case errors.As(err, &se) && se.Code == HandshakeFailure && !se.Remote:
		return RefusedTLS
	}
	return RefusedProtocol
}

// ListenerStats counts what a listener refused and answered statelessly,
// and the packets its sessions dropped as forged or replayed.
type ListenerStats struct {
	Refused         map[Refusal]uint64
	RetriesSent     uint64
	ResetsSent      uint64
	HalfOpen        int
	Handshakes      uint64 // completed
	DecryptFailures uint64 // packets that failed to open, live and ended sessions
	ReplaysDropped  uint64
}

// listenerCounters are a listener's counters and its refusal log.
type listenerCounters struct {
	refused                   [numRefusals]atomic.Uint64
	retries, resets, accepted atomic.Uint64
	// Of sessions that ended; live sessions are added in Stats.
	decryptFailures, replays atomic.Uint64

	log     *zap.Logger
	logMu   sync.Mutex
	limits  [numRefusals]*rate.Limiter
	dropped [numRefusals]int // lines suppressed since the last one of a reason
}

func newListenerCounters(log *zap.Logger) *listenerCounters {
	c := &listenerCounters{log: log}
	for i := range c.limits {
		// A peer decides how often we refuse it: at most one line a second
		// per reason, each saying how many were left out.
		c.limits[i] = rate.NewLimiter(rate.Every(time.Second), 1)
	}
	return c
}

// refuse counts a refusal and logs it, rate-limited.
func (c *listenerCounters) refuse(r Refusal, addr net.Addr, err error) {
	c.refused[r].Add(1)
	if c.log == nil {
		return
	}
	c.logMu.Lock()
	if !c.limits[r].Allow() {
		c.dropped[r]++
		c.logMu.Unlock()
		return
	}
	suppressed := c.dropped[r]
	c.dropped[r] = 0
	c.logMu.Unlock()
	fields := []zap.Field{zap.String("reason", r.String()), zap.Uint64("total", c.refused[r].Load()), zap.Int("suppressed", suppressed)}
	if addr != nil {
		fields = append(fields, zap.String("remote", addr.String()))
	}
	if err != nil {
		fields = append(fields, zap.Error(err))
	}
	c.log.Warn("TMP handshake refused", fields...)
}
