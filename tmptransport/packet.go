package tmptransport

import (
	"encoding/binary"
	"fmt"
)

// Packet layout (SPEC.md §2). Every packet starts with a flags byte:
//
//	bit 7 (0x80)  long header (handshake) when set
//	bit 6 (0x40)  fixed bit, always set; packets without it are dropped
//	long:  bits 0-1 packet type (0 Initial, 1 Handshake)
//	short: bit 0 key phase (RFC 9001 §6)
//
// Long header:  flags(1) version(4) session id(8) packet number(8)
// Short header: flags(1) session id(8) packet number(8) send time µs(4)
const (
	flagLong      = 0x80
	flagFixed     = 0x40
	flagKeyPhase  = 0x01
	longTypeMask  = 0x03
	sessionIDLen  = 8
	longHeaderLen = 1 + 4 + sessionIDLen + 8
	shortHdrLen   = 1 + sessionIDLen + 8 + 4
	aeadOverhead  = 16

	// Version is the only TMP wire version: "TMP1".
	Version uint32 = 0x544d5031
)

// Long header packet types.
const (
	packetInitial   = 0
	packetHandshake = 1
)

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
	sendTime uint32 // short header only: sender clock, µs, wrapping
	raw      []byte
	payload  []byte
}

// parseHeader decodes the header of one datagram. It never panics on input of
// any length.
func parseHeader(b []byte) (*header, error) {
	if len(b) < 1 {
		return nil, errorf(ProtocolViolation, "empty packet")
	}
	if b[0]&flagFixed == 0 {
		return nil, errorf(ProtocolViolation, "fixed bit not set")
	}
	h := &header{long: b[0]&flagLong != 0}
	if h.long {
		if len(b) < longHeaderLen {
			return nil, errorf(ProtocolViolation, "truncated long header: %d bytes", len(b))
		}
		h.typ = b[0] & longTypeMask
		if h.typ > packetHandshake {
			return nil, errorf(ProtocolViolation, "unknown long packet type %d", h.typ)
		}
		h.version = binary.BigEndian.Uint32(b[1:5])
		copy(h.id[:], b[5:13])
		h.pn = binary.BigEndian.Uint64(b[13:21])
		h.raw, h.payload = b[:longHeaderLen], b[longHeaderLen:]
		return h, nil
	}
	if len(b) < shortHdrLen {
		return nil, errorf(ProtocolViolation, "truncated short header: %d bytes", len(b))
	}
	h.keyPhase = b[0]&flagKeyPhase != 0
	copy(h.id[:], b[1:9])
	h.pn = binary.BigEndian.Uint64(b[9:17])
	h.sendTime = binary.BigEndian.Uint32(b[17:21])
	h.raw, h.payload = b[:shortHdrLen], b[shortHdrLen:]
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
	if len(b) < shortHdrLen {
		return id, false, false
	}
	copy(id[:], b[1:9])
	return id, false, true
}

func appendLongHeader(b []byte, typ uint8, id sessionID, pn uint64) []byte {
	b = append(b, flagLong|flagFixed|typ)
	b = binary.BigEndian.AppendUint32(b, Version)
	b = append(b, id[:]...)
	return binary.BigEndian.AppendUint64(b, pn)
}

func appendShortHeader(b []byte, keyPhase bool, id sessionID, pn uint64, sendTime uint32) []byte {
	f := byte(flagFixed)
	if keyPhase {
		f |= flagKeyPhase
	}
	b = append(b, f)
	b = append(b, id[:]...)
	b = binary.BigEndian.AppendUint64(b, pn)
	return binary.BigEndian.AppendUint32(b, sendTime)
}

func (h *header) String() string {
	if h.long {
		return fmt.Sprintf("long(type=%d pn=%d)", h.typ, h.pn)
	}
	return fmt.Sprintf("short(pn=%d kp=%v)", h.pn, h.keyPhase)
}
