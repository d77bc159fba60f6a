package tmptransport

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

// A raw frame written here is a zstd frame klauspost/compress decodes, alone
// and between frames of its own encoder, at every size up to the largest.
func TestRawZstdFramesDecode(t *testing.T) {
	var wire bytes.Buffer
	var want []byte
	enc, _ := zstd.NewWriter(&wire, zstd.WithEncoderConcurrency(1))
	text := bytes.Repeat([]byte("conductor "), 1000)
	enc.Write(text)
	enc.Close()
	want = append(want, text...)
	for _, n := range []int{1, 255, 256, 65536, zstdRawFrameMax} {
		p := make([]byte, n)
		rand.Read(p)
		h := zstdRawFrameHeader(n)
		wire.Write(h[:])
		wire.Write(p)
		want = append(want, p...)
	}
	enc.Reset(&wire)
	enc.Write(text)
	enc.Close()
	want = append(want, text...)
	dec, err := zstd.NewReader(&wire, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(1<<20))
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	got, err := io.ReadAll(dec)
	if err != nil {
		t.Fatal(err)
	}
	if i := firstDiff(got, want); i >= 0 {
		t.Fatalf("%d bytes decoded of %d, first difference at %d", len(got), len(want), i)
	}
}

// On a compressed stream, random bytes stop going through the encoder after
// the first Write that does not shrink: they go as raw frames, which cost
// a copy, and arrive whole. Text written after them is compressed again
// once the skip is over.
func TestIncompressibleDataSkipsZstd(t *testing.T) {
	p := getPKI(t)
	_, c, s := pair(t, p.serverConfig(), p.clientConfig())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	random := make([]byte, 4<<20)
	rand.Read(random)
	text := bytes.Repeat([]byte(`{"sku":"A-1","name":"conductor tee","price":19.99}`), 40000) // 2 MB
	got := make(chan []byte, 1)
	serveStreams(ctx, s, func(st *Stream) {
		b, _ := io.ReadAll(st)
		got <- b
	})
	st, err := c.OpenStreamOptions(ctx, OpenStreamOptions{Priority: 2, Compress: true})
	if err != nil {
		t.Fatal(err)
	}
	const chunk = 32 << 10
	write := func(b []byte) {
		for len(b) > 0 {
			if _, err := st.Write(b[:min(chunk, len(b))]); err != nil {
				t.Fatal(err)
			}
			b = b[min(chunk, len(b)):]
		}
	}
	write(random)
	st.zwmu.Lock()
	encoded := st.zs.out
	st.zwmu.Unlock()
	// One Write, then one after each skip of 256 KiB, 512 KiB, then 1 MiB:
	// six of the 128 Writes, and a few bytes of frame ends.
	if encoded > 7*chunk {
		t.Errorf("the encoder took %d bytes of 4 MiB of random data", encoded)
	}
	write(text)
	st.CloseWrite()
	want := append(append([]byte(nil), random...), text...)
	b := <-got
	if i := firstDiff(b, want); i >= 0 {
		t.Fatalf("%d bytes arrived of %d, first difference at %d", len(b), len(want), i)
	}
	st.zwmu.Lock()
	encoded = st.zs.out
	st.zwmu.Unlock()
	sent := c.Stats().StreamBytesSent[2]
	t.Logf("encoder output %d bytes; %d stream bytes sent for %d written", encoded, sent, len(want))
	// Raw frames cost 12 bytes in 128 KiB; up to a skip's worth of the
	// text may go raw, the rest compresses to a few per cent.
	if limit := uint64(len(random)+len(random)/100+zstdSkipMax) + uint64(len(text))/10; sent > limit {
		t.Errorf("%d stream bytes for 4 MiB of random data and 2 MB of text, want at most %d: text not compressed, or raw frames too costly", sent, limit)
	}
}

// BenchmarkCompressedRandom moves random bytes over a compressed stream:
// what skipping the encoder saves (zstdskip.go).
func BenchmarkCompressedRandom(b *testing.B) {
	p := getPKI(b)
	_, c, s := pair(b, p.serverConfig(), p.clientConfig())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	serveStreams(ctx, s, func(st *Stream) { io.Copy(io.Discard, st) })
	st, err := c.OpenStreamOptions(ctx, OpenStreamOptions{Priority: 2, Compress: true})
	if err != nil {
		b.Fatal(err)
	}
	// 8 MiB of random bytes, written in turn: the encoder's 1 MiB window
	// never sees a repeat, which it would compress away.
	src := make([]byte, 8<<20)
	rand.Read(src)
	const chunk = 32 << 10
	b.SetBytes(chunk)
	b.ResetTimer()
	for i := range b.N {
		off := i * chunk % len(src)
		if _, err := st.Write(src[off : off+chunk]); err != nil {
			b.Fatal(err)
		}
	}
}
