package waitingroom

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"time"
)

// ticket is the room's cookie: who the visitor is, their place in line
// (ticket and the nonce that changes each time they check in) or their
// active session, and a MAC over all of it and the room's name. A forged
// or altered cookie fails the MAC; a copy of a waiting visitor's old
// cookie carries a nonce the room no longer accepts; an active session's
// cookie is bound to the client address it was issued to.
type ticket struct {
	active  bool
	user    userID
	ticket  uint64
	nonce   uint64
	expires time.Time
	ipHash  uint64
}

const (
	cookieVersion = 1
	payloadLen    = 1 + 1 + 16 + 8 + 8 + 8 + 8
	macLen        = 16 // HMAC-SHA256 truncated to 128 bits (RFC 2104 §5)
)

var (
	errMalformed = errors.New("malformed cookie")
	errForged    = errors.New("cookie fails its MAC")
	errExpired   = errors.New("cookie expired")
)

func (t ticket) encode(key []byte, room string) string {
	b := make([]byte, payloadLen, payloadLen+macLen)
	b[0] = cookieVersion
	if t.active {
		b[1] = 1
	}
	copy(b[2:18], t.user[:])
	binary.BigEndian.PutUint64(b[18:], t.ticket)
	binary.BigEndian.PutUint64(b[26:], t.nonce)
	binary.BigEndian.PutUint64(b[34:], uint64(t.expires.UnixMilli()))
	binary.BigEndian.PutUint64(b[42:], t.ipHash)
	b = append(b, mac(key, room, b[:payloadLen])...)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeTicket(s string, key []byte, room string, now time.Time) (ticket, error) {
	var t ticket
	if len(s) > 200 {
		return t, errMalformed
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil || len(b) != payloadLen+macLen || b[0] != cookieVersion || b[1] > 1 {
		return t, errMalformed
	}
	if !hmac.Equal(b[payloadLen:], mac(key, room, b[:payloadLen])) {
		return t, errForged
	}
	t.active = b[1] == 1
	copy(t.user[:], b[2:18])
	t.ticket = binary.BigEndian.Uint64(b[18:])
	t.nonce = binary.BigEndian.Uint64(b[26:])
	t.expires = time.UnixMilli(int64(binary.BigEndian.Uint64(b[34:])))
	t.ipHash = binary.BigEndian.Uint64(b[42:])
	if now.After(t.expires) {
		return t, errExpired
	}
	return t, nil
}

func mac(key []byte, room string, payload []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(room))
	m.Write([]byte{0})
	m.Write(payload)
	return m.Sum(nil)[:macLen]
}

// ipHash binds an active session to the client address, keyed so the
// cookie does not reveal the address.
func ipHash(key []byte, ip string) uint64 {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("ip\x00"))
	m.Write([]byte(ip))
	return binary.BigEndian.Uint64(m.Sum(nil))
}
