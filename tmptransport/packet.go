package tmptransport

import (
	"encoding/binary"
	"fmt"

	"github.com/quic-go/quic-go/quicvarint"
)

// Packet layout (SPEC.md §2). Every packet starts with a flags byte:
//
//	bit 7 (0x80)  long header (handshake) when set
//	bit 6 (0x40)  fixed bit, always set; packets without it are dropped
//	long:  bits 0-1 packet type (0 Initial, 1 Handshake)
//	short: bit 0 key phase (RFC 9001 §6), bit 1 send time present
//
// Long header:  flags(1) version(4) session id(8) packet number(8)
// Short header: flags(1) session id(8) packet number(4) [send time µs(4)]
//
// The short header carries the low 32 bits of the packet number; the
// receiver restores the rest from the largest it has received (RFC 9000
// §17.1 and A.3). That is exact while fewer than 2³¹ packets are in flight,
// and the congestion window is capped far below. The send time, which only
// feeds the delay-variation estimate, rides on about one packet a
// millisecond. Every byte of header is a byte less of goodput in each of
// thousands of packets a second.
const (
	flagLong       = 0x80
	flagFixed      = 0x40
	flagKeyPhase   = 0x01
	flagSendTime   = 0x02
	longTypeMask   = 0x03
	sessionIDLen   = 8
	longHeaderLen  = 1 + 4 + sessionIDLen + 8
	minShortHdrLen = 1 + sessionIDLen + 4
	shortHdrLen    = minShortHdrLen + 4 // with the send time: the largest
	aeadOverhead   = 16

	// Version is the only TMP wire version: "TMP1".
	Version uint32 = 0x544d5031
)

// Long header packet types.
const (
	packetInitial   = 0
	packetHandshake = 1
	packetRetry     = 2
)

// maxTokenLen bounds the token field of an Initial; a token is tokenLen
// bytes, and anything longer is not ours.
const maxTokenLen = 64

// sessionID identifies a session on both ends, so that one UDP socket can
// demultiplex many sessions and a session survives a NAT rebinding.
type sessionID [sessionIDLen]byte

// header is a decoded packet header. raw aliases the packet bytes that are
// authenticated as AEAD associated data.
type header struct {
	long     bool
	typ      uint8 // long header only
	version  uint32
	id       sessionID
	pn       uint64
	keyPhase bool   // short header only
	hasTime  bool   // short header only: sendTime is set
	sendTime uint32 // short header only: sender clock, µs, wrapping
	token    []byte // Initial and Retry only: the address-validation token
	raw      []byte
	payload  []byte
	// opened is the key the socket's reader already opened this short
	// packet with (openearly.go): payload is plaintext and pn is whole.
	// nil while the packet is sealed.
	opened *packetKey
}

// parseHeader decodes the header of one datagram. It never panics on input of
// any length. The header is a value: one a packet costs no allocation.
func parseHeader(b []byte) (header, error) {
	if len(b) < 1 {
		return header{}, errorf(ProtocolViolation, "empty packet")
	}
	if b[0]&flagFixed == 0 {
		return header{}, errorf(ProtocolViolation, "fixed bit not set")
	}
	h := header{long: b[0]&flagLong != 0}
	if h.long {
		if len(b) < longHeaderLen {
			return header{}, errorf(ProtocolViolation, "truncated long header: %d bytes", len(b))
		}
		h.typ = b[0] & longTypeMask
		if h.typ > packetRetry {
			return header{}, errorf(ProtocolViolation, "unknown long packet type %d", h.typ)
		}
		h.version = binary.BigEndian.Uint32(b[1:5])
		copy(h.id[:], b[5:13])
		if h.typ == packetRetry {
			// flags(1) version(4) session_id(8) token: no packet number.
			h.token = b[1+4+sessionIDLen:]
			h.raw = b
			return h, nil
		}
		h.pn = binary.BigEndian.Uint64(b[13:21])
		n := longHeaderLen
		if h.typ == packetInitial {
			tl, l, err := quicvarint.Parse(b[n:])
			if err != nil || tl > maxTokenLen || uint64(len(b)-n-l) < tl {
				return header{}, errorf(ProtocolViolation, "bad Initial token length")
			}
			h.token = b[n+l : n+l+int(tl)]
			n += l + int(tl)
		}
		h.raw, h.payload = b[:n], b[n:]
		return h, nil
	}
	n := minShortHdrLen
	h.hasTime = b[0]&flagSendTime != 0
	if h.hasTime {
		n = shortHdrLen
	}
	if len(b) < n {
		return header{}, errorf(ProtocolViolation, "truncated short header: %d bytes", len(b))
	}
	h.keyPhase = b[0]&flagKeyPhase != 0
	copy(h.id[:], b[1:9])
	h.pn = uint64(binary.BigEndian.Uint32(b[9:13])) // truncated: see decodePacketNumber
	if h.hasTime {
		h.sendTime = binary.BigEndian.Uint32(b[13:17])
	}
	h.raw, h.payload = b[:n], b[n:]
	return h, nil
}

// peekSessionID returns the session ID of a datagram without validating more.
func peekSessionID(b []byte) (sessionID, bool, bool) {
	var id sessionID
	if len(b) < 1 || b[0]&flagFixed == 0 {
		return id, false, false
	}
	if b[0]&flagLong != 0 {
		if len(b) < longHeaderLen {
			return id, false, false
		}
		copy(id[:], b[5:13])
		return id, true, true
	}
	if len(b) < minShortHdrLen {
		return id, false, false
	}
	copy(id[:], b[1:9])
	return id, false, true
}

// appendLongHeader writes a Handshake header, or an Initial header with an
// empty token.
func appendLongHeader(b []byte, typ uint8, id sessionID, pn uint64) []byte {
	return appendInitialHeader(b, typ, id, pn, nil)
}

// appendInitialHeader writes a long header; an Initial carries the token
// (SPEC.md §2).
func appendInitialHeader(b []byte, typ uint8, id sessionID, pn uint64, token []byte) []byte {
	b = append(b, flagLong|flagFixed|typ)
	b = binary.BigEndian.AppendUint32(b, Version)
	b = append(b, id[:]...)
	b = binary.BigEndian.AppendUint64(b, pn)
	if typ == packetInitial {
		b = quicvarint.Append(b, uint64(len(token)))
		b = append(b, token...)
	}
	return b
}

// appendRetry writes a Retry packet: flags, version, session ID, token.
func appendRetry(b []byte, id sessionID, token []byte) []byte {
	b = append(b, flagLong|flagFixed|packetRetry)
	b = binary.BigEndian.AppendUint32(b, Version)
	b = append(b, id[:]...)
	return append(b, token...)
}

// peekInitial reads what the listener needs of a datagram for an unknown
// session before it commits any state: whether it is an Initial of our
// version, and its token. It allocates nothing.
func peekInitial(b []byte) (token []byte, ok bool) {
	if len(b) < longHeaderLen+1 || b[0]&(flagLong|flagFixed|longTypeMask) != flagLong|flagFixed|packetInitial {
		return nil, false
	}
	if binary.BigEndian.Uint32(b[1:5]) != Version {
		return nil, false
	}
	tl, l, err := quicvarint.Parse(b[longHeaderLen:])
	if err != nil || tl > maxTokenLen || uint64(len(b)-longHeaderLen-l) < tl {
		return nil, false
	}
	return b[longHeaderLen+l : longHeaderLen+l+int(tl)], true
}

// appendShortHeader writes a short header; stamp adds the send time.
func appendShortHeader(b []byte, keyPhase bool, id sessionID, pn uint64, stamp bool, sendTime uint32) []byte {
	f := byte(flagFixed)
	if keyPhase {
		f |= flagKeyPhase
	}
	if stamp {
		f |= flagSendTime
	}
	b = append(b, f)
	b = append(b, id[:]...)
	b = binary.BigEndian.AppendUint32(b, uint32(pn))
	if stamp {
		b = binary.BigEndian.AppendUint32(b, sendTime)
	}
	return b
}

// decodePacketNumber restores a packet number from its low 32 bits and the
// largest packet number received so far (RFC 9000 A.3): the candidate
// closest to the next expected one.
func decodePacketNumber(largest uint64, haveLargest bool, truncated uint64) uint64 {
	const win = uint64(1) << 32
	const hwin, mask = win / 2, win - 1
	expected := uint64(0)
	if haveLargest {
		expected = largest + 1
	}
	candidate := (expected &^ mask) | truncated
	switch {
	case candidate+hwin <= expected && candidate < (1<<62)-win:
		return candidate + win
	case candidate > expected+hwin && candidate >= win:
		return candidate - win
	}
	return candidate
}

func (h *header) String() string {
	if h.long {
		return fmt.Sprintf("long(type=%d pn=%d)", h.typ, h.pn)
	}
	return fmt.Sprintf("short(pn=%d kp=%v)", h.pn, h.keyPhase)
}
