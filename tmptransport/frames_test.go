package tmptransport

import (
	"bytes"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

func allFrames() []frame {
	return []frame{
		pingFrame{},
		handshakeDoneFrame{},
		&ackFrame{Ranges: []ackRange{{90, 100}, {50, 80}, {0, 10}}, Delay: 1500 * time.Microsecond},
		&ackFrame{Ranges: []ackRange{{7, 7}}},
		&resetStreamFrame{StreamID: 5, Code: StreamCancelled, FinalSize: 12345},
		&stopSendingFrame{StreamID: 8, Code: 0x1234},
		&cryptoFrame{Offset: 10, Data: []byte("client hello")},
		&streamOpenFrame{StreamID: 12, Priority: 4, Flags: openFlagZstd},
		&streamOpenFrame{StreamID: 16, Priority: 1, Flags: openFlagService, Service: "redis"},
		&streamOpenFrame{StreamID: 20, Priority: 3, Flags: openFlagService | openFlagAddrs, Service: "smtp",
			Source: netip.MustParseAddrPort("198.51.100.7:40123"), Destination: netip.MustParseAddrPort("203.0.113.1:25")},
		&streamOpenFrame{StreamID: 24, Priority: 3, Flags: openFlagService | openFlagAddrs, Service: "pg",
			Source: netip.MustParseAddrPort("[2001:db8::7]:40123"), Destination: netip.MustParseAddrPort("[2001:db8::1]:5432")},
		&streamFrame{StreamID: 12, Offset: 1 << 40, Data: []byte("sub-packet"), Fin: true},
		&streamFrame{StreamID: 3, Offset: 0, Data: []byte{}},
		&streamFrame{StreamID: 7, Offset: 1452, Data: []byte("more behind"), More: true},
		&maxDataFrame{Max: 1 << 30},
		&maxStreamDataFrame{StreamID: 99, Max: 1 << 20},
		&maxStreamsFrame{Max: 4096},
		&linkQualityFrame{Interval: time.Second, PacketsReceived: 900, PacketsLost: 9, BytesReceived: 1 << 20,
			DelayVariation: 3 * time.Millisecond, CongestionWindow: 64, SmoothedRTT: 40 * time.Millisecond, SendRate: 1 << 22},
		&closeFrame{Code: ProtocolViolation, Reason: "bad frame"},
	}
}

func TestFramesRoundTrip(t *testing.T) {
	for _, f := range allFrames() {
		b := f.appendTo(nil)
		p := frameParser{b: b}
		got, err := p.next()
		if err != nil {
			t.Fatalf("%T: %v", f, err)
		}
		if !reflect.DeepEqual(got, f) {
			t.Errorf("round trip of %T:\n got %#v\nwant %#v", f, got, f)
		}
		if len(p.b) != 0 {
			t.Errorf("%T: %d bytes left over", f, len(p.b))
		}
	}
}

func TestFramesRejectBadInput(t *testing.T) {
	// Claim 1 MB of data in a 14-byte frame.
	oversized := append([]byte{frameStream, 1, 0, 0x80, 0x10, 0, 0}, 0)
	cases := []struct {
		name string
		in   []byte
		want string
	}{
		{"unknown frame type", []byte{0x3f}, "unknown frame type 0x3f"},
		{"truncated stream frame", (&streamFrame{StreamID: 1, Data: []byte("hello")}).appendTo(nil)[:6], "truncated stream data"},
		{"oversized stream frame", oversized, "oversized stream data"},
		{"truncated ack", []byte{frameAck, 5}, "truncated ack delay"},
		{"ack range below zero", []byte{frameAck, 5, 0, 0, 6}, "invalid first ack range"},
		{"too many ack ranges", []byte{frameAck, 5, 0, 0x41, 0x01, 0}, "too many ack ranges"},
		{"close reason too long", append([]byte{frameClose, 0, 0x48, 0x00}, make([]byte, 2048)...), "close reason too long"},
		{"truncated priority", []byte{frameStreamOpen, 4}, "truncated priority"},
		{"service flag without a name", []byte{frameStreamOpen, 4, 1, openFlagService}, "truncated service name length"},
		{"service name cut short", []byte{frameStreamOpen, 4, 1, openFlagService, 5, 'r', 'e'}, "truncated service name"},
		{"service name with a slash", []byte{frameStreamOpen, 4, 1, openFlagService, 3, 'a', '/', 'b'}, "service name"},
		{"empty service name", []byte{frameStreamOpen, 4, 1, openFlagService, 0}, "service name"},
		{"address family 5", []byte{frameStreamOpen, 4, 1, openFlagAddrs, 5, 1, 2, 3, 4, 0, 1}, "address family 5"},
		{"addresses cut short", []byte{frameStreamOpen, 4, 1, openFlagAddrs, 4, 1, 2, 3, 4, 0, 1, 9, 9}, "truncated address"},
		{"empty varint", []byte{frameMaxData}, "truncated max data"},
	}
	for _, c := range cases {
		p := frameParser{b: c.in}
		_, err := p.next()
		var pe *protoError
		if err == nil || !errors.As(err, &pe) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want a frame encoding error containing %q", c.name, err, c.want)
		}
	}
}

func FuzzParseFrames(f *testing.F) {
	var all []byte
	for _, fr := range allFrames() {
		b := fr.appendTo(nil)
		f.Add(b)
		all = append(all, b...)
	}
	f.Add(all)
	f.Add([]byte{})
	f.Add([]byte{0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		p := frameParser{b: in}
		for i := 0; i < 10000; i++ {
			fr, err := p.next()
			if err != nil || fr == nil {
				return
			}
			// Whatever parses must re-encode to something that parses the same.
			re := fr.appendTo(nil)
			q := frameParser{b: re}
			fr2, err := q.next()
			if err != nil {
				t.Fatalf("re-encoded %T does not parse: %v", fr, err)
			}
			if _, ok := fr.(paddingFrame); !ok && !reflect.DeepEqual(fr, fr2) {
				t.Fatalf("re-encoded %T differs:\n%#v\n%#v", fr, fr, fr2)
			}
		}
	})
}

func TestPacketHeaders(t *testing.T) {
	id := sessionID{1, 2, 3, 4, 5, 6, 7, 8}
	long := appendLongHeader(nil, packetHandshake, id, 77)
	h, err := parseHeader(append(long, 1, 2, 3))
	if err != nil || !h.long || h.typ != packetHandshake || h.id != id || h.pn != 77 || h.version != Version || len(h.payload) != 3 {
		t.Fatalf("long header: %+v, %v", h, err)
	}
	short := appendShortHeader(nil, true, id, 1<<40+3, true, 123456)
	h, err = parseHeader(short)
	if err != nil || h.long || !h.keyPhase || h.pn != 3 || !h.hasTime || h.sendTime != 123456 || len(h.payload) != 0 {
		t.Fatalf("short header: %+v, %v", h, err)
	}
	for _, bad := range [][]byte{nil, {0x00}, {0xc0, 1, 2}, short[:10], {0xc3, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 0, 0, 0, 0, 1}} {
		if _, err := parseHeader(bad); err == nil {
			t.Errorf("parseHeader(%x) accepted a malformed packet", bad)
		}
	}
}

func FuzzParsePacket(f *testing.F) {
	id := sessionID{9, 9, 9, 9, 9, 9, 9, 9}
	f.Add(appendLongHeader(nil, packetInitial, id, 0))
	f.Add(append(appendShortHeader(nil, false, id, 5, true, 7), bytes.Repeat([]byte{1}, 40)...))
	f.Add(append(appendShortHeader(nil, false, id, 5, false, 0), bytes.Repeat([]byte{1}, 40)...))
	f.Add([]byte{0x40})
	f.Fuzz(func(t *testing.T, in []byte) {
		h, err := parseHeader(in)
		if err != nil {
			return
		}
		if len(h.raw)+len(h.payload) != len(in) {
			t.Fatalf("header %d + payload %d != packet %d", len(h.raw), len(h.payload), len(in))
		}
		if id, long, ok := peekSessionID(in); !ok || long != h.long || id != h.id {
			t.Fatal("peekSessionID disagrees with parseHeader")
		}
		p := frameParser{b: h.payload}
		for i := 0; i < 1000; i++ {
			if fr, err := p.next(); err != nil || fr == nil {
				break
			}
		}
	})
}

func TestTransportParamsRoundTripAndErrors(t *testing.T) {
	p := &transportParams{InitialMaxStreamData: 1 << 18, InitialMaxData: 1 << 20, MaxStreams: 4096,
		MaxPacketSize: 1452, IdleTimeout: 30 * time.Second, MaxAckDelay: 10 * time.Millisecond,
		StatelessResetToken: bytes.Repeat([]byte{7}, 16), StreamMore: true}
	got, err := parseTransportParams(p.marshal(), true)
	if err != nil || !reflect.DeepEqual(got, p) {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	if _, err := parseTransportParams(p.marshal(), false); err == nil || !strings.Contains(err.Error(), "client sent a stateless reset token") {
		t.Errorf("a client's reset token was accepted: %v", err)
	}
	bad := map[string][]byte{
		"missing packet size":      (&transportParams{}).marshal()[:0],
		"truncated":                p.marshal()[:5],
		"tiny packet size":         {tpMaxPacketSize, 2, 0x40, 0x10},
		"duplicate":                append(p.marshal(), p.marshal()[:3]...),
		"stream_more with a value": append((&transportParams{MaxPacketSize: 1452}).marshal(), tpStreamMore, 1, 0),
	}
	for name, b := range bad {
		if _, err := parseTransportParams(b, true); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func FuzzTransportParams(f *testing.F) {
	f.Add((&transportParams{MaxPacketSize: 1452, StatelessResetToken: make([]byte, 16)}).marshal())
	f.Add((&transportParams{MaxPacketSize: 1452, StreamMore: true}).marshal())
	f.Add([]byte{0x04, 0x02, 0x45, 0xac})
	f.Fuzz(func(t *testing.T, in []byte) {
		p, err := parseTransportParams(in, true)
		if err != nil {
			return
		}
		q, err := parseTransportParams(p.marshal(), true)
		if err != nil || !reflect.DeepEqual(p, q) {
			t.Fatalf("re-marshalled parameters differ: %+v vs %+v (%v)", p, q, err)
		}
	})
}
