package tmptransport

import (
	"time"

	"github.com/quic-go/quic-go/quicvarint"
)

// transportParams are exchanged inside the TLS handshake (as QUIC does, RFC 9000
// §18), so they are authenticated by it. Encoding: a sequence of
// (id varint, length varint, value) triples; unknown ids are ignored so that
// later versions can add parameters.
type transportParams struct {
	InitialMaxStreamData uint64
	InitialMaxData       uint64
	MaxStreams           uint64
	MaxPacketSize        uint64
	IdleTimeout          time.Duration
	MaxAckDelay          time.Duration
	// StatelessResetToken is sent by servers only (SPEC.md §6).
	StatelessResetToken []byte
	// StreamMore says the sender accepts STREAM_MORE frames (SPEC.md §3),
	// so the peer may mark stream data that has more queued behind it.
	// A peer that does not say so gets plain STREAM frames.
	StreamMore bool
}

const (
	tpInitialMaxStreamData = 0x01
	tpInitialMaxData       = 0x02
	tpMaxStreams           = 0x03
	tpMaxPacketSize        = 0x04
	tpIdleTimeout          = 0x05
	tpMaxAckDelay          = 0x06
	tpStatelessResetToken  = 0x07
	tpStreamMore           = 0x08

	statelessResetTokenLen = 16
	minPacketSize          = 1200
	maxPacketSizeLimit     = 65527
)

func (p *transportParams) marshal() []byte {
	var b []byte
	num := func(id, v uint64) {
		b = quicvarint.Append(b, id)
		b = quicvarint.Append(b, uint64(quicvarint.Len(v)))
		b = quicvarint.Append(b, v)
	}
	num(tpInitialMaxStreamData, p.InitialMaxStreamData)
	num(tpInitialMaxData, p.InitialMaxData)
	num(tpMaxStreams, p.MaxStreams)
	num(tpMaxPacketSize, p.MaxPacketSize)
	num(tpIdleTimeout, uint64(p.IdleTimeout/time.Millisecond))
	num(tpMaxAckDelay, uint64(p.MaxAckDelay/time.Millisecond))
	if len(p.StatelessResetToken) > 0 {
		b = quicvarint.Append(b, tpStatelessResetToken)
		b = quicvarint.Append(b, uint64(len(p.StatelessResetToken)))
		b = append(b, p.StatelessResetToken...)
	}
	if p.StreamMore {
		b = quicvarint.Append(b, tpStreamMore)
		b = quicvarint.Append(b, 0)
	}
	return b
}

func parseTransportParams(b []byte, fromServer bool) (*transportParams, error) {
	p := &transportParams{}
	seen := map[uint64]bool{}
	for len(b) > 0 {
		id, n, err := quicvarint.Parse(b)
		if err != nil {
			return nil, errorf(TransportParamErr, "truncated parameter id")
		}
		b = b[n:]
		l, n, err := quicvarint.Parse(b)
		if err != nil {
			return nil, errorf(TransportParamErr, "truncated length of parameter 0x%x", id)
		}
		b = b[n:]
		if uint64(len(b)) < l {
			return nil, errorf(TransportParamErr, "parameter 0x%x: want %d bytes, have %d", id, l, len(b))
		}
		val := b[:l]
		b = b[l:]
		if seen[id] {
			return nil, errorf(TransportParamErr, "duplicate parameter 0x%x", id)
		}
		seen[id] = true
		var v uint64
		if id >= tpInitialMaxStreamData && id <= tpMaxAckDelay {
			var m int
			v, m, err = quicvarint.Parse(val)
			if err != nil || m != len(val) {
				return nil, errorf(TransportParamErr, "parameter 0x%x: malformed integer", id)
			}
		}
		switch id {
		case tpInitialMaxStreamData:
			p.InitialMaxStreamData = v
		case tpInitialMaxData:
			p.InitialMaxData = v
		case tpMaxStreams:
			if v > 1<<60 {
				return nil, errorf(TransportParamErr, "max streams %d out of range", v)
			}
			p.MaxStreams = v
		case tpMaxPacketSize:
			if v < minPacketSize || v > maxPacketSizeLimit {
				return nil, errorf(TransportParamErr, "max packet size %d out of range [%d, %d]", v, minPacketSize, maxPacketSizeLimit)
			}
			p.MaxPacketSize = v
		case tpIdleTimeout:
			if v > 1<<32 {
				return nil, errorf(TransportParamErr, "idle timeout out of range")
			}
			p.IdleTimeout = time.Duration(v) * time.Millisecond
		case tpMaxAckDelay:
			if v >= 1<<14 {
				return nil, errorf(TransportParamErr, "max ack delay %d ms out of range", v)
			}
			p.MaxAckDelay = time.Duration(v) * time.Millisecond
		case tpStatelessResetToken:
			if !fromServer {
				return nil, errorf(TransportParamErr, "client sent a stateless reset token")
			}
			if len(val) != statelessResetTokenLen {
				return nil, errorf(TransportParamErr, "stateless reset token of %d bytes", len(val))
			}
			p.StatelessResetToken = append([]byte(nil), val...)
		case tpStreamMore:
			if len(val) != 0 {
				return nil, errorf(TransportParamErr, "stream_more carries %d bytes, want none", len(val))
			}
			p.StreamMore = true
		}
	}
	if p.MaxPacketSize == 0 {
		return nil, errorf(TransportParamErr, "missing max packet size")
	}
	return p, nil
}
