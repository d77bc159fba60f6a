package tmptransport

// Opening 1-RTT packets on the socket's read path. A dialed session's
// reader goroutine used to copy each datagram out of its recvmmsg buffer
// and hand the copy to the session goroutine, which decrypted it in place.
// The 1 MB proxy profile (bench/RESULTS.md, session 11) showed why that
// cost: the front-end's AES-GCM Open took 0.25 CPU s per GB against 0.14
// for crypto/tls reading the same bytes, because the session goroutine
// decrypted on the other core data the reader had just written on its own.
// The reader now opens the packet itself, from its receive buffer straight
// into the pooled buffer the session gets: the copy and the decryption
// are one pass, on the core where the bytes are.
//
// It only does what the session would do with the same keys: a packet the
// reader cannot open (a late one of the previous key phase, a forgery, a
// stateless reset, a long header) goes to the session sealed, as before,
// and the session's rules (key updates, AEAD limits, reset detection)
// decide. The session checks the key of every packet the reader opened
// against its own state (appKeys.acceptOpened).

// readKey is what the reader needs to open a short packet: the session's
// current 1-RTT read key, its key phase, and the key of the next phase
// (RFC 9001 §6).
type readKey struct {
	key, next *packetKey
	phase     bool
}

// publishReadKeyLocked lets the reader open with the current read keys. It
// runs when the handshake installs the 1-RTT keys and after every packet the
// session takes, which is when a key update moves the read key.
func (s *Session) publishReadKeyLocked() {
	if r := s.rxKey.Load(); r == nil || r.key != s.keys.read {
		s.rxKey.Store(&readKey{key: s.keys.read, next: s.keys.readNext, phase: s.keys.readPhase})
	}
}

// earlyOpener opens a session's short packets on its reader goroutine.
// largest is the highest packet number it opened, for decoding the next
// (packet.go: the 32-bit truncation leaves a window far wider than any
// reordering); nonce is its own, as the session's key is shared.
type earlyOpener struct {
	s       *Session
	largest uint64
	have    bool
	nonce   [12]byte
}

// open returns b opened into a pooled buffer, ready for the session, or
// false if b is for the session to open.
func (o *earlyOpener) open(b []byte) (datagram, bool) {
	k := o.s.rxKey.Load()
	if k == nil {
		return datagram{}, false
	}
	h, err := parseHeader(b)
	if err != nil || h.long || h.id != o.s.id || len(h.payload) < aeadOverhead {
		return datagram{}, false
	}
	key := k.key
	if h.keyPhase != k.phase {
		// The peer has updated its keys (RFC 9001 §6): the next key
		// opens its packets until the session follows. A late packet
		// of the previous phase fails here and goes to the session.
		key = k.next
	}
	pn := decodePacketNumber(o.largest, o.have, h.pn)
	buf := append(getBuf(len(b)), h.raw...)
	out, err := key.openWith(&o.nonce, buf, h.raw, h.payload, pn)
	if err != nil {
		putBuf(buf)
		return datagram{}, false
	}
	if !o.have || pn > o.largest {
		o.largest, o.have = pn, true
	}
	return datagram{b: out, opened: key, pn: pn}, true
}
