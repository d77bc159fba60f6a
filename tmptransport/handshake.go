package tmptransport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"time"
)

// The handshake is TLS 1.3 driven through crypto/tls's QUIC API (RFC 9001
// §4): TLS hands us handshake bytes and traffic secrets per encryption level,
// and we carry the bytes in CRYPTO frames. Initial-level bytes (ClientHello,
// ServerHello) travel in cleartext, exactly as they would over TCP; the TLS
// transcript hash detects any change to them. Handshake-level bytes are sealed
// with the handshake secrets. Reliability is by flight: each side resends its
// whole unconfirmed flight on a backed-off timer, or at once when the peer
// resends (SPEC.md §5).

// Bounds on the CRYPTO reassembly of one level. Both are reached only by a
// peer that is not running a TLS stack: a ClientHello or a certificate flight
// arrives in a handful of packets, so a few gaps cover any reordering. They
// keep the work a half-open session costs O(1) per packet: every insert walks
// at most maxCryptoRanges ranges, and the buffer never passes
// maxCryptoBuffer. Past either, the half-open session is dropped.
const (
	maxCryptoBuffer = 64 << 10
	maxCryptoRanges = 16
)

// levelIndex maps the two handshake encryption levels to array indices.
func levelIndex(l tls.QUICEncryptionLevel) (int, bool) {
	switch l {
	case tls.QUICEncryptionLevelInitial:
		return 0, true
	case tls.QUICEncryptionLevelHandshake:
		return 1, true
	}
	return 0, false
}

// cryptoStream reassembles the CRYPTO bytes of one level.
type cryptoStream struct {
	buf       []byte
	have      rangeSet // at most maxCryptoRanges ranges
	delivered uint64
}

// insert stores CRYPTO data at off and reports whether any of it was new.
func (c *cryptoStream) insert(off uint64, data []byte) (bool, error) {
	end := off + uint64(len(data))
	if end > maxCryptoBuffer {
		return false, errCryptoBuffer
	}
	if end <= c.delivered || len(data) == 0 {
		return false, nil
	}
	if off < c.delivered {
		data = data[c.delivered-off:]
		off = c.delivered
	}
	if c.have.covers(off, end) {
		return false, nil // a resent flight: nothing to copy
	}
	c.have.add(off, end)
	if len(c.have.r) > maxCryptoRanges {
		return false, errCryptoRanges
	}
	if uint64(len(c.buf)) < end {
		c.buf = append(c.buf, make([]byte, int(end)-len(c.buf))...)
	}
	copy(c.buf[off:end], data)
	return true, nil
}

// contiguous returns undelivered bytes that are ready and marks them delivered.
func (c *cryptoStream) contiguous() []byte {
	if c.have.empty() || c.have.first().start != 0 {
		return nil
	}
	end := c.have.first().end
	if end <= c.delivered {
		return nil
	}
	d := c.buf[c.delivered:end]
	c.delivered = end
	return d
}

type handshake struct {
	isClient  bool
	conn      *tls.QUICConn
	readLevel tls.QUICEncryptionLevel
	ownParams []byte

	sendBuf [2][]byte
	recv    [2]cryptoStream

	hsRead, hsWrite   *packetKey
	appRead, appWrite *packetKey
	peerParams        *transportParams

	tlsDone bool // TLS reported the handshake complete
	done    bool // ...and both 1-RTT keys are installed
}

func newHandshake(isClient bool, tlsConf *tls.Config, own *transportParams) *handshake {
	h := &handshake{isClient: isClient, ownParams: own.marshal()}
	qc := &tls.QUICConfig{TLSConfig: tlsConf}
	if isClient {
		h.conn = tls.QUICClient(qc)
		h.conn.SetTransportParameters(h.ownParams)
	} else {
		h.conn = tls.QUICServer(qc)
	}
	return h
}

func (h *handshake) start(ctx context.Context) error {
	if err := h.conn.Start(ctx); err != nil {
		return fmt.Errorf("tmp: tls: %w", err)
	}
	return h.processEvents()
}

// handleCrypto takes CRYPTO frame data received at a level and reports
// whether any of it was new.
func (h *handshake) handleCrypto(level tls.QUICEncryptionLevel, off uint64, data []byte) (bool, error) {
	i, ok := levelIndex(level)
	if !ok {
		return false, errorf(ProtocolViolation, "crypto data at level %v", level)
	}
	added, err := h.recv[i].insert(off, data)
	if err != nil || !added {
		return false, err
	}
	return true, h.feed()
}

// feed passes contiguous data of the current read level to TLS, and keeps
// going while TLS moves to a level for which data is already buffered.
func (h *handshake) feed() error {
	for {
		i, ok := levelIndex(h.readLevel)
		if !ok {
			return nil
		}
		d := h.recv[i].contiguous()
		if d == nil {
			return nil
		}
		before := h.readLevel
		if err := h.conn.HandleData(h.readLevel, d); err != nil {
			return h.tlsError(err)
		}
		if err := h.processEvents(); err != nil {
			return err
		}
		if h.readLevel == before {
			return nil
		}
	}
}

func (h *handshake) tlsError(err error) error {
	var alert tls.AlertError
	if errors.As(err, &alert) {
		return &SessionError{Code: HandshakeFailure, Reason: err.Error()}
	}
	return &SessionError{Code: HandshakeFailure, Reason: err.Error()}
}

func (h *handshake) processEvents() error {
	for {
		ev := h.conn.NextEvent()
		switch ev.Kind {
		case tls.QUICNoEvent:
			return nil
		case tls.QUICErrorEvent:
			return h.tlsError(ev.Err)
		case tls.QUICSetReadSecret, tls.QUICSetWriteSecret:
			suite, err := suiteByID(ev.Suite)
			if err != nil {
				return err
			}
			k, err := newPacketKey(suite, ev.Data)
			if err != nil {
				return err
			}
			read := ev.Kind == tls.QUICSetReadSecret
			switch {
			case ev.Level == tls.QUICEncryptionLevelHandshake && read:
				h.hsRead = k
				h.readLevel = ev.Level
			case ev.Level == tls.QUICEncryptionLevelHandshake:
				h.hsWrite = k
			case ev.Level == tls.QUICEncryptionLevelApplication && read:
				h.appRead = k
				h.readLevel = ev.Level
			case ev.Level == tls.QUICEncryptionLevelApplication:
				h.appWrite = k
			}
		case tls.QUICWriteData:
			i, ok := levelIndex(ev.Level)
			if !ok {
				// Post-handshake messages (session tickets) are not used.
				continue
			}
			if len(h.sendBuf[i])+len(ev.Data) > maxCryptoBuffer {
				return errorf(HandshakeFailure, "handshake flight too large")
			}
			h.sendBuf[i] = append(h.sendBuf[i], ev.Data...)
		case tls.QUICTransportParameters:
			p, err := parseTransportParams(ev.Data, h.isClient)
			if err != nil {
				return err
			}
			h.peerParams = p
		case tls.QUICTransportParametersRequired:
			h.conn.SetTransportParameters(h.ownParams)
		case tls.QUICHandshakeDone:
			h.tlsDone = true
		}
		if h.tlsDone && !h.done {
			if h.peerParams == nil {
				return errorf(TransportParamErr, "peer sent no transport parameters")
			}
			if h.appRead != nil && h.appWrite != nil {
				h.done = true
			}
		}
	}
}

// appendCryptoFrames appends CRYPTO frames carrying data[from:] of a level
// into as many payloads as needed, each at most room bytes.
func appendCryptoFrames(data []byte, room int) [][]byte {
	var out [][]byte
	for off := 0; off < len(data); {
		n := min(room-16, len(data)-off)
		f := &cryptoFrame{Offset: uint64(off), Data: data[off : off+n]}
		out = append(out, f.appendTo(nil))
		off += n
	}
	return out
}

func (h *handshake) close() {
	if h.conn != nil {
		h.conn.Close()
	}
}

func (h *handshake) connectionState() tls.ConnectionState { return h.conn.ConnectionState() }

// hsProgress is the session's side of the handshake: the Initial and
// Handshake packets' numbers and retransmission, the anti-amplification
// counts, the Retry a client followed, and the packets that arrived before
// the keys to open them. Guarded by the session lock.
type hsProgress struct {
	pn        uint64
	rto       time.Duration
	next      time.Time // the next retransmission
	resendNow bool
	sent      [2]int // flights sent, per packet type
	recvBytes int    // for the 3× anti-amplification limit (server)
	sentBytes int
	deadline  time.Time
	// addrValidated (server): the client proved it receives at its address,
	// by a Retry token or a Handshake packet; until then the 3× limit holds.
	addrValidated bool
	retried       bool   // client: a Retry was followed (only one is)
	retryToken    []byte // client: the token every later Initial carries
	pendingHS     [][]byte
	pendingApp    [][]byte
}
