package tmptransport

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"
)

func TestEchoOneStream(t *testing.T) {
	p := getPKI(t)
	_, c, s := pair(t, p.serverConfig(), p.clientConfig())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go echoServer(ctx, s)
	st, err := c.OpenStream(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	msg := bytes.Repeat([]byte("conductor "), 10000)
	go func() {
		st.Write(msg)
		st.CloseWrite()
	}()
	got, err := io.ReadAll(st)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("echo mismatch: got %d bytes, want %d", len(got), len(msg))
	}
	st.Close()
	_ = time.Second
}

// A bulk stream fills packets: its sub-packets in one packet share a single
// STREAM frame header, and the packet is filled to the byte, so stream data
// is over 96.5 % of the UDP payload the sender writes (a 13-byte header, a
// 16-byte tag and one 9-byte frame header in 1452 bytes leave 97.4 %, a bit
// less on packets that carry the send time; the rest of the margin is for
// ACKs and for packets that carry only a retransmitted tail). With a 21-byte
// header, a frame header per 512-byte sub-packet and padding it was 94.8 %.
func TestBulkStreamFillsPackets(t *testing.T) {
	pki := getPKI(t)
	_, c, s := pair(t, pki.serverConfig(), pki.clientConfig())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	go func() {
		st, err := s.AcceptStream(ctx)
		if err != nil {
			return
		}
		io.Copy(io.Discard, st)
		st.Write(make([]byte, 4<<20))
		st.CloseWrite()
	}()
	st, err := c.OpenStream(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	st.CloseWrite()
	n, err := io.Copy(io.Discard, st)
	if err != nil || n != 4<<20 {
		t.Fatalf("read %d bytes, %v", n, err)
	}
	stats := s.Stats()
	// Resent bytes count as data: this is about packing, and loopback
	// under -race can overflow a socket buffer now and then.
	data := stats.StreamBytesSent[3] + stats.RetransmittedBytes
	eff := float64(data) / float64(stats.BytesSent)
	t.Logf("stream data: %.2f %% of %d bytes in %d packets", 100*eff, stats.BytesSent, stats.PacketsSent)
	if eff < 0.965 {
		t.Fatalf("stream data is %.2f %% of the %d bytes sent in %d packets; want ≥ 96.5 %%", 100*eff, stats.BytesSent, stats.PacketsSent)
	}
}
