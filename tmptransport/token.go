package tmptransport

import (
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Address-validation tokens (SPEC.md §5.1, after RFC 9000 §8.1.2). A
// listener under load answers an Initial with a Retry carrying a token, and
// keeps no state until the token comes back in a new Initial: a source that
// cannot receive at its address (a spoofed one) never gets past the Retry.
//
// A token is
//
//	kind(1) epoch(1) nonce(12) AES-256-GCM(key(epoch), issued_ms(8))
//
// with the kind, the epoch, the session ID and the client's address (IP and
// port) as associated data: the token binds all of them without carrying
// them. Keys rotate every tokenEpoch; key(e) = HKDF(token root, e), so
// no key is ever stored and a token of the current or the previous epoch
// opens. A Retry token is good for retryTokenLifetime.
const (
	tokenKindRetry     = 0x01
	tokenEpoch         = time.Minute
	retryTokenLifetime = 10 * time.Second
	tokenNonceLen      = 12
	tokenLen           = 2 + tokenNonceLen + 8 + aeadOverhead
)

// tokenMinter makes and checks tokens for one listener.
type tokenMinter struct {
	root []byte

	mu   sync.Mutex
	keys [2]epochKey // the two newest epochs used
}

type epochKey struct {
	epoch int64
	aead  cipher.AEAD
}

func newTokenMinter(root []byte) *tokenMinter {
	return &tokenMinter{root: root}
}

// key returns the AEAD of an epoch, deriving it at most once per epoch.
func (m *tokenMinter) key(epoch int64) (cipher.AEAD, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, k := range m.keys {
		if k.aead != nil && k.epoch == epoch {
			return k.aead, nil
		}
	}
	var info [8]byte
	binary.BigEndian.PutUint64(info[:], uint64(epoch))
	raw, err := hkdf.Key(sha256.New, m.root, nil, "tmp token epoch "+string(info[:]), 32)
	if err != nil {
		return nil, err
	}
	aead, err := newGCM(raw)
	if err != nil {
		return nil, err
	}
	// Keep the newer of the two slots.
	i := 0
	if m.keys[1].epoch < m.keys[0].epoch {
		i = 1
	}
	m.keys[i] = epochKey{epoch, aead}
	return aead, nil
}

// tokenAD is the associated data: what the token is bound to.
func tokenAD(kind, epoch byte, id sessionID, addr net.Addr) []byte {
	ad := make([]byte, 0, 2+sessionIDLen+18)
	ad = append(ad, kind, epoch)
	ad = append(ad, id[:]...)
	ap := addrPort(addr)
	ip := ap.Addr().As16()
	ad = append(ad, ip[:]...)
	return binary.BigEndian.AppendUint16(ad, ap.Port())
}

// mint makes a Retry token for a session ID and client address.
func (m *tokenMinter) mint(id sessionID, addr net.Addr) []byte {
	now := time.Now()
	epoch := now.UnixNano() / int64(tokenEpoch)
	aead, err := m.key(epoch)
	if err != nil {
		return nil
	}
	tok := make([]byte, 2+tokenNonceLen, tokenLen)
	tok[0], tok[1] = tokenKindRetry, byte(epoch)
	rand.Read(tok[2 : 2+tokenNonceLen])
	var issued [8]byte
	binary.BigEndian.PutUint64(issued[:], uint64(now.UnixMilli()))
	return aead.Seal(tok, tok[2:2+tokenNonceLen], issued[:], tokenAD(tok[0], tok[1], id, addr))
}

// valid reports whether tok is a live Retry token for this session ID and
// address. It costs one AES-GCM open of 24 bytes: O(1).
func (m *tokenMinter) valid(tok []byte, id sessionID, addr net.Addr) bool {
	if len(tok) != tokenLen || tok[0] != tokenKindRetry {
		return false
	}
	now := time.Now()
	cur := now.UnixNano() / int64(tokenEpoch)
	var epoch int64
	switch tok[1] {
	case byte(cur):
		epoch = cur
	case byte(cur - 1):
		epoch = cur - 1
	default:
		return false
	}
	aead, err := m.key(epoch)
	if err != nil {
		return false
	}
	var plain [8]byte
	if _, err := aead.Open(plain[:0], tok[2:2+tokenNonceLen], tok[2+tokenNonceLen:], tokenAD(tok[0], tok[1], id, addr)); err != nil {
		return false
	}
	issued := time.UnixMilli(int64(binary.BigEndian.Uint64(plain[:])))
	age := now.Sub(issued)
	return age >= -time.Second && age <= retryTokenLifetime
}

// addrPort returns a UDP address as a netip.AddrPort (unmapped), or the
// zero value for other kinds of address.
func addrPort(a net.Addr) netip.AddrPort {
	if u, ok := a.(*net.UDPAddr); ok {
		ap := u.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return netip.AddrPort{}
}
