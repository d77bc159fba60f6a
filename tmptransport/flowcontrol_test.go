package tmptransport

import (
	"testing"
	"time"
)

// A receive window moves when the reader has used more than half of it,
// doubles when that happens within two round trips (the sender was held
// by the window, not the path), and never past its maximum.
func TestReceiveWindowAutoTunes(t *testing.T) {
	w := newReceiveWindow(100, 400)
	now := time.Now()
	const srtt = 10 * time.Millisecond
	if w.consume(50, now, srtt) {
		t.Fatal("moved with half the window left")
	}
	if !w.consume(51, now, srtt) || w.limit != 151 || w.size != 100 || !w.queued {
		t.Fatalf("first move: %+v", w)
	}
	// Used up again 5 ms later (< 2 RTT): the window doubles.
	if !w.consume(102, now.Add(5*time.Millisecond), srtt) || w.size != 200 || w.limit != 302 {
		t.Fatalf("fast reader: %+v", w)
	}
	if !w.consume(250, now.Add(10*time.Millisecond), srtt) || w.size != 400 {
		t.Fatalf("second doubling: %+v", w)
	}
	if !w.consume(500, now.Add(15*time.Millisecond), srtt) || w.size != 400 || w.limit != 900 {
		t.Fatalf("capped at the maximum: %+v", w)
	}
	// A slow reader (a second later) moves the window without growing it.
	if !w.consume(800, now.Add(time.Second), srtt) || w.size != 400 {
		t.Fatalf("slow reader: %+v", w)
	}
}

// The peer's limits only grow.
func TestSendWindowNeverShrinks(t *testing.T) {
	w := sendWindow{limit: 100}
	w.sent = 60
	if w.raise(80) || w.limit != 100 || w.left() != 40 {
		t.Fatalf("a lower limit was taken: %+v", w)
	}
	if !w.raise(200) || w.left() != 140 {
		t.Fatalf("raise: %+v", w)
	}
	w.sent = 250
	if w.left() != 0 {
		t.Fatalf("left past the limit: %d", w.left())
	}
}

// The stream table admits peer streams up to the advertised limit, and
// gives a slot back for each one that finishes.
func TestStreamTableLimits(t *testing.T) {
	tab := newStreamTable(false, 2) // a server: the client's streams are even
	for _, id := range []uint64{0, 2} {
		if ok, err := tab.admit(id); !ok || err != nil {
			t.Fatalf("stream %d: %v %v", id, ok, err)
		}
	}
	if _, err := tab.admit(4); err == nil {
		t.Fatal("a third peer stream beyond the limit of 2 was admitted")
	}
	if _, err := tab.admit(3); err == nil {
		t.Fatal("a frame for a local stream never opened was admitted")
	}
	tab.remove(&Stream{id: 0})
	if !tab.queued || tab.advertised != 3 {
		t.Fatalf("after a peer stream finished: advertised %d queued %v", tab.advertised, tab.queued)
	}
	if ok, _ := tab.admit(0); ok {
		t.Fatal("a finished stream came back")
	}
	if ok, err := tab.admit(4); !ok || err != nil {
		t.Fatalf("stream 4 after a slot came back: %v %v", ok, err)
	}
	if tab.canOpen() {
		t.Fatal("opened a stream before the peer's MAX_STREAMS")
	}
	tab.raisePeerMax(1)
	if id := tab.openLocal(); id != 1 || tab.canOpen() {
		t.Fatalf("local stream %d, can open another: %v", id, tab.canOpen())
	}
}
