package tmptransport

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"
)

// Bytes that came with more behind them wait until holdLimit are
// contiguous; bytes that end a write (a plain STREAM frame) are the
// reader's at once, and so is everything below them.
func TestHeldBytesWaitForPushOrLimit(t *testing.T) {
	var b recvBuffer
	b.holdLimit = 3000
	if _, err := b.insert(0, make([]byte, 1400), false, true, nil); err != nil {
		t.Fatal(err)
	}
	if b.deliverable() {
		t.Fatal("1400 held bytes woke the reader")
	}
	b.insert(1400, make([]byte, 1400), false, true, nil)
	if b.deliverable() {
		t.Fatal("2800 held bytes woke the reader")
	}
	b.insert(2800, make([]byte, 1400), false, true, nil)
	if !b.deliverable() {
		t.Fatal("4200 contiguous bytes, above the limit, did not wake the reader")
	}
	b.read(make([]byte, 8000))

	// A write's last frame arrives before the frame ahead of it.
	b.insert(5600, make([]byte, 100), false, false, nil)
	if b.deliverable() {
		t.Fatal("deliverable with a gap at the reader's offset")
	}
	b.insert(4200, make([]byte, 1400), false, true, nil)
	if !b.deliverable() {
		t.Fatal("bytes below a pushed frame were held")
	}
	if n := b.read(make([]byte, 8000)); n != 1500 {
		t.Fatalf("read %d bytes, want the 1500 up to the push", n)
	}

	// A lone FIN ends the stream: nothing waits.
	b.insert(5700, make([]byte, 10), false, true, nil)
	b.insert(5710, nil, true, false, nil)
	if !b.deliverable() {
		t.Fatal("bytes before the FIN were held")
	}

	// A peer that never sends STREAM_MORE is never held.
	var old recvBuffer
	old.holdLimit = 3000
	old.insert(0, []byte("x"), false, false, nil)
	if !old.deliverable() {
		t.Fatal("a plain STREAM frame was held")
	}
}

// A bulk answer on a 1500-byte path reaches its reader in reads of at least
// maxReadHold bytes, not one packet at a time: the reader wakes once per
// 16 kB, as an HTTP/2 reader does per DATA frame. Only the end of the write
// (pushed) may come shorter, or bytes resent after a loss.
func TestBulkReadsCoalesce(t *testing.T) {
	c, s := basePacketPair(t)
	const size = 4 << 20
	want := bytes.Repeat([]byte("0123456789abcdef"), size/16)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	serveStreams(ctx, s, func(st *Stream) {
		st.Write(want)
		st.Close()
	})
	st, err := c.OpenStream(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	st.Write([]byte("GET"))
	buf := make([]byte, 64<<10)
	var got []byte
	var sizes []int
	for {
		n, err := st.Read(buf)
		got = append(got, buf[:n]...)
		if n > 0 {
			sizes = append(sizes, n)
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("got %d bytes, want %d", len(got), len(want))
	}
	short := 0
	for _, n := range sizes[:len(sizes)-1] {
		if n < maxReadHold {
			short++
		}
	}
	// A resent frame goes without STREAM_MORE, so each loss may end one
	// read early; nothing else may.
	lost := s.Stats().PacketsLost
	t.Logf("%d reads (%d shorter than %d bytes) for %d bytes; %d packets lost", len(sizes), short, maxReadHold, size, lost)
	if uint64(short) > lost {
		t.Fatalf("%d of %d reads were shorter than %d bytes, %d packets lost: %v", short, len(sizes), maxReadHold, lost, sizes[:min(len(sizes), 20)])
	}
}

// Small writes, each waited for by the other end, arrive at once: the last
// frame of a write is never held (a request and its answer would wait for
// each other for ever).
func TestSmallWritesNotHeld(t *testing.T) {
	p := getPKI(t)
	_, c, s := pair(t, p.serverConfig(), p.clientConfig())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go echoServer(ctx, s)
	st, err := c.OpenStream(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	st.SetReadDeadline(time.Now().Add(20 * time.Second))
	msg := bytes.Repeat([]byte("ping "), 20)
	buf := make([]byte, len(msg))
	for i := 0; i < 50; i++ {
		if _, err := st.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(st, buf); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
	}
}

// Held bytes hold flow-control credit back. With many streams and small
// windows, the hold limit shrinks so that the windows still move: every
// stream finishes. (With a fixed 16 kB hold, 64 streams would sit on up to
// 1 MB against a 128 kB session window, and stall.)
func TestHeldBytesNeverStallWindows(t *testing.T) {
	p := getPKI(t)
	sc, cc := p.serverConfig(), p.clientConfig()
	sc.NoPathMTUDiscovery, cc.NoPathMTUDiscovery = true, true
	cc.InitialStreamWindow, cc.MaxStreamWindow = 32<<10, 32<<10
	cc.InitialSessionWindow, cc.MaxSessionWindow = 128<<10, 128<<10
	_, c, s := pair(t, sc, cc)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const streams, size = 64, 512 << 10
	serveStreams(ctx, s, func(st *Stream) {
		st.Write(make([]byte, size))
		st.Close()
	})
	var g errgroup.Group
	for i := 0; i < streams; i++ {
		g.Go(func() error {
			st, err := c.OpenStream(ctx, 2)
			if err != nil {
				return err
			}
			st.Write([]byte("GET"))
			st.SetReadDeadline(time.Now().Add(50 * time.Second))
			n, err := io.Copy(io.Discard, st)
			if err != nil || n != size {
				return errors.Join(err, errors.New("short stream"))
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
}
