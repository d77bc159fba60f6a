package waitingroom

import (
	"strings"
	"testing"
	"time"
)

func TestCookieRoundTripsAndRejectsTampering(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	now := time.Now()
	in := ticket{active: true, user: userID{1, 2, 3}, ticket: 42, nonce: 7, expires: now.Add(time.Minute).Truncate(time.Millisecond), ipHash: 99}
	s := in.encode(key, "shop")
	out, err := decodeTicket(s, key, "shop", now)
	if err != nil || out != in {
		t.Fatalf("round trip: %+v, %v", out, err)
	}
	if _, err := decodeTicket(s, key, "other-room", now); err != errForged {
		t.Errorf("cookie of another room: %v, want errForged", err)
	}
	if _, err := decodeTicket(s, []byte("another key......................"), "shop", now); err != errForged {
		t.Errorf("other key: %v", err)
	}
	// Flip each character: every change is caught.
	for i := range s {
		b := []byte(s)
		b[i] ^= 1
		if _, err := decodeTicket(string(b), key, "shop", now); err == nil {
			t.Fatalf("altered cookie (byte %d) accepted", i)
		}
	}
	if _, err := decodeTicket(s, key, "shop", now.Add(2*time.Minute)); err != errExpired {
		t.Errorf("expired: %v", err)
	}
	for _, bad := range []string{"", "!!", strings.Repeat("A", 500), "AAAA"} {
		if _, err := decodeTicket(bad, key, "shop", now); err != errMalformed {
			t.Errorf("%q: %v, want errMalformed", bad, err)
		}
	}
}

// FuzzDecodeTicket: any cookie value decodes or fails without panicking,
// and nothing but a correctly MACed one is accepted.
func FuzzDecodeTicket(f *testing.F) {
	key := []byte("k")
	f.Add(ticket{ticket: 1, expires: time.Now().Add(time.Hour)}.encode(key, "r"))
	f.Add("")
	f.Add("AQ")
	f.Fuzz(func(t *testing.T, s string) {
		tk, err := decodeTicket(s, key, "r", time.Unix(0, 0))
		if err == nil && tk.encode(key, "r") != s {
			t.Fatalf("accepted %q, which is not the room's encoding", s)
		}
	})
}
