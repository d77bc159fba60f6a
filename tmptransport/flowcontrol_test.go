package tmptransport

import (
	"context"
	"io"
	"net"
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

// A reader that gives up on a stream gives its bytes back to the session
// window, all of them and once. The session window is the peer's credit for
// every stream together: bytes counted as received and never as consumed
// shrink it for good, and enough of them stop every stream of the session;
// bytes given back twice let the peer past the window's bound (a peer that
// sent a stopped stream's bytes again grew it at will). Here the client
// abandons streams mid-answer over a path that loses, duplicates and
// reorders packets, so that some are abandoned with gaps below data already
// received, some learn their final size from the server's FIN, some from its
// RESET_STREAM after STOP_SENDING. When all are gone and nothing is in
// flight, the client must have consumed exactly what it received.
func TestAbandonedStreamsGiveTheSessionWindowBack(t *testing.T) {
	p := getPKI(t)
	lossy := func(pc net.PacketConn) net.PacketConn { return newLossyConn(pc, 0.05, 0.05, 0.05, 7) }
	c, s := impairedPair(t, p.serverConfig(), p.clientConfig(), lossy, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	answer := make([]byte, 256<<10)
	serveStreams(ctx, s, func(st *Stream) {
		b := make([]byte, 1)
		if _, err := io.ReadFull(st, b); err != nil {
			st.Reset(StreamCancelled)
			return
		}
		st.Write(answer[:int(b[0])<<10])
		st.Close()
	})
	buf := make([]byte, 8<<10)
	for i := range 60 {
		st, err := c.OpenStream(ctx, 2)
		if err != nil {
			t.Fatal(err)
		}
		size := byte(16 + i%8*30) // 16 to 226 KiB
		if _, err := st.Write([]byte{size}); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(st, buf[:1+i%8*1024]); err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
		if i%3 == 0 {
			// Let the rest of the answer, FIN and all, reach the client
			// before it gives up.
			time.Sleep(20 * time.Millisecond)
		}
		st.Close()
	}
	quiet := func() bool {
		s.mu.Lock()
		inFlight := s.lr.sent.bytesInFlight
		s.mu.Unlock()
		c.mu.Lock()
		defer c.mu.Unlock()
		return inFlight == 0 && len(c.tab.streams) == 0
	}
	for !quiet() {
		if ctx.Err() != nil {
			c.mu.Lock()
			n := len(c.tab.streams)
			c.mu.Unlock()
			t.Fatalf("the client still holds %d streams", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.mu.Lock()
	received, consumed := c.fc.received, c.fc.consumed
	c.mu.Unlock()
	if received != consumed {
		t.Fatalf("session window: %d bytes received, %d consumed: %d leaked", received, consumed, int64(received)-int64(consumed))
	}
}
