package tmptransport

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"hash"

	"golang.org/x/crypto/chacha20poly1305"
)

// Packet protection follows RFC 9001 §5: a TLS 1.3 traffic secret is expanded
// with HKDF-Expand-Label into an AEAD key and IV; the nonce is the IV XORed with
// the packet number, and the packet header is the associated data. TMP uses
// its own labels ("tmp key", "tmp iv", "tmp ku") so that keys can never be
// confused with QUIC's. Header protection is not used: TMP's packet numbers
// are not secret, and they are authenticated as part of the header.

// cipherSuite maps a TLS 1.3 suite to its AEAD and hash, and the AEAD's
// usage limits (RFC 9001 §6.6, for packets of up to 2^11 bytes):
// confidentiality, the packets one key may seal; integrity, the forged
// packets a receiver may try to open, across all keys, before the
// probability of accepting one becomes too high.
type cipherSuite struct {
	id                   uint16
	keyLen               int
	hash                 func() hash.Hash
	aead                 func(key []byte) (cipher.AEAD, error)
	confidentialityLimit uint64
	integrityLimit       uint64
}

func suiteByID(id uint16) (*cipherSuite, error) {
	switch id {
	case tls.TLS_AES_128_GCM_SHA256:
		return &cipherSuite{id, 16, sha256.New, newGCM, 1 << 23, 1 << 52}, nil
	case tls.TLS_AES_256_GCM_SHA384:
		return &cipherSuite{id, 32, sha512.New384, newGCM, 1 << 23, 1 << 52}, nil
	case tls.TLS_CHACHA20_POLY1305_SHA256:
		// RFC 9001 §6.6: no practical confidentiality limit (more
		// packets than a 62-bit packet number counts).
		return &cipherSuite{id, 32, sha256.New, chacha20poly1305.New, 1 << 62, 1 << 36}, nil
	}
	return nil, fmt.Errorf("tmp: unsupported cipher suite 0x%04x", id)
}

func newGCM(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

// hkdfExpandLabel is TLS 1.3's HKDF-Expand-Label (RFC 8446 §7.1) with an
// empty context.
func hkdfExpandLabel(h func() hash.Hash, secret []byte, label string, length int) []byte {
	full := "tls13 " + label
	info := make([]byte, 0, 4+len(full))
	info = binary.BigEndian.AppendUint16(info, uint16(length))
	info = append(info, byte(len(full)))
	info = append(info, full...)
	info = append(info, 0) // empty context
	out, err := hkdf.Expand(h, secret, string(info), length)
	if err != nil {
		// Only possible if length exceeds 255*hash size, which our fixed
		// lengths never do.
		panic("tmp: hkdf: " + err.Error())
	}
	return out
}

// packetKey seals and opens packets of one direction at one key generation.
type packetKey struct {
	suite  *cipherSuite
	secret []byte
	aead   cipher.AEAD
	iv     [12]byte
	// nonceBuf holds the nonce of the packet being sealed or opened: the
	// AEAD interface would make a nonce on the stack escape, an allocation
	// a packet. A key is used only under its session's lock.
	nonceBuf [12]byte
}

func newPacketKey(suite *cipherSuite, secret []byte) (*packetKey, error) {
	key := hkdfExpandLabel(suite.hash, secret, "tmp key", suite.keyLen)
	a, err := suite.aead(key)
	if err != nil {
		return nil, err
	}
	k := &packetKey{suite: suite, secret: append([]byte(nil), secret...), aead: a}
	copy(k.iv[:], hkdfExpandLabel(suite.hash, secret, "tmp iv", 12))
	return k, nil
}

// next derives the key of the following generation (RFC 9001 §6.1).
func (k *packetKey) next() (*packetKey, error) {
	s := hkdfExpandLabel(k.suite.hash, k.secret, "tmp ku", k.suite.hash().Size())
	return newPacketKey(k.suite, s)
}

func (k *packetKey) nonce(pn uint64) [12]byte {
	n := k.iv
	var p [8]byte
	binary.BigEndian.PutUint64(p[:], pn)
	for i := 0; i < 8; i++ {
		n[4+i] ^= p[i]
	}
	return n
}

// sealInPlace encrypts pkt[hdrLen:] in place, authenticating pkt[:hdrLen],
// and returns the whole packet. pkt needs aeadOverhead bytes of spare capacity.
func (k *packetKey) sealInPlace(pkt []byte, hdrLen int, pn uint64) []byte {
	k.nonceBuf = k.nonce(pn)
	ct := k.aead.Seal(pkt[hdrLen:hdrLen], k.nonceBuf[:], pkt[hdrLen:], pkt[:hdrLen])
	return pkt[:hdrLen+len(ct)]
}

func (k *packetKey) open(dst, hdr, ciphertext []byte, pn uint64) ([]byte, error) {
	return k.openWith(&k.nonceBuf, dst, hdr, ciphertext, pn)
}

// openWith opens with the caller's nonce buffer: the socket's reader
// (openearly.go) opens without the session's lock. A cipher.AEAD from
// cipher.NewGCM keeps no state between calls, so both may use it at once.
func (k *packetKey) openWith(nonce *[12]byte, dst, hdr, ciphertext []byte, pn uint64) ([]byte, error) {
	*nonce = k.nonce(pn)
	return k.aead.Open(dst, nonce[:], ciphertext, hdr)
}

// appKeys holds the 1-RTT keys of a session and implements key updates
// (RFC 9001 §6): the key phase bit in the short header says which generation
// sealed a packet. Either side may start an update; the other follows when it
// sees the new phase.
type appKeys struct {
	read, readPrev, readNext *packetKey
	write, writeNext         *packetKey
	readPhase, writePhase    bool
	// firstPNInPhase is the lowest packet number received in the current read
	// phase; older packets with the other phase bit use readPrev.
	firstPNInPhase uint64
	// sentInPhase counts packets sealed with the current write key.
	sentInPhase uint64
	// updatePending is set after we start an update and cleared once the
	// peer answers in the new phase; a second update waits for that.
	updatePending bool
	updates       uint64

	// updateAt is how many packets one write key seals before an update
	// starts: the configured interval, at most half the suite's
	// confidentiality limit, so that an update that waits for the peer
	// still lands before the limit. limit is that hard limit: a key that
	// reaches it seals no more, and the session closes.
	updateAt, limit uint64
	// forged counts packets that failed to open under any key; at
	// forgedLimit (the suite's integrity limit) the session closes.
	forged, forgedLimit uint64
	maxInPhase          uint64 // the most packets any write key sealed
}

// setLimits applies the suite's AEAD limits and the configured update
// interval.
func (k *appKeys) setLimits(interval uint64) {
	s := k.write.suite
	k.limit = s.confidentialityLimit
	k.updateAt = min(interval, s.confidentialityLimit/2)
	k.forgedLimit = s.integrityLimit
}

// sealed counts a packet sealed under the current write key.
func (k *appKeys) sealed() {
	k.sentInPhase++
	k.maxInPhase = max(k.maxInPhase, k.sentInPhase)
}

// onForged counts a packet that failed to open and reports whether the
// integrity limit is reached.
func (k *appKeys) onForged() bool {
	k.forged++
	return k.forged >= k.forgedLimit
}

func newAppKeys(read, write *packetKey) (*appKeys, error) {
	rn, err := read.next()
	if err != nil {
		return nil, err
	}
	wn, err := write.next()
	if err != nil {
		return nil, err
	}
	k := &appKeys{read: read, readNext: rn, write: write, writeNext: wn}
	k.setLimits(write.suite.confidentialityLimit)
	return k, nil
}

// initiateUpdate switches the write side to the next generation.
func (k *appKeys) initiateUpdate() error {
	if k.updatePending {
		return nil
	}
	wn, err := k.writeNext.next()
	if err != nil {
		return err
	}
	k.write, k.writeNext = k.writeNext, wn
	k.writePhase = !k.writePhase
	k.sentInPhase = 0
	k.updatePending = true
	k.updates++
	return nil
}

// acceptOpened reports whether the session takes a packet that the socket's
// reader opened under key (openearly.go): only if key is the one open would
// have used. A packet opened under the next key moves the read key on, as
// open does; one under a key the session has left behind is refused.
func (k *appKeys) acceptOpened(key *packetKey, h *header) (bool, error) {
	switch {
	case h.keyPhase == k.readPhase:
		return key == k.read, nil
	case h.pn < k.firstPNInPhase && k.readPrev != nil:
		return key == k.readPrev, nil
	case key != k.readNext:
		return false, nil
	}
	return true, k.follow(h)
}

// open decrypts a short-header packet, following a peer-initiated key update
// when the phase bit flips.
func (k *appKeys) open(dst []byte, h *header) ([]byte, error) {
	if h.keyPhase == k.readPhase {
		return k.read.open(dst, h.raw, h.payload, h.pn)
	}
	if h.pn < k.firstPNInPhase && k.readPrev != nil {
		return k.readPrev.open(dst, h.raw, h.payload, h.pn)
	}
	out, err := k.readNext.open(dst, h.raw, h.payload, h.pn)
	if err != nil {
		return nil, err
	}
	return out, k.follow(h)
}

// follow moves the read key on after h opened under the next one, and the
// write key too if the peer started the update.
func (k *appKeys) follow(h *header) error {
	rn, err := k.readNext.next()
	if err != nil {
		return err
	}
	k.readPrev, k.read, k.readNext = k.read, k.readNext, rn
	k.readPhase = h.keyPhase
	k.firstPNInPhase = h.pn
	if k.writePhase != k.readPhase {
		// The peer started this update: follow it.
		if err := k.initiateUpdate(); err != nil {
			return err
		}
	}
	k.updatePending = false
	return nil
}
