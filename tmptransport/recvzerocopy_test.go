package tmptransport

import (
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"
)

// A stream's receive buffer keeps the datagrams its data arrived in (no
// copy, recvBuffer.store) and hands them back once read. 32 streams of
// request and 1 MB answer, five rounds each, arrive intact; under the race
// detector this also proves that no datagram goes back to the pool while
// its session still parses it (a reader that put a datagram back at once
// raced the parse of its later frames, and another session's packet was
// written into it).
func TestKeptDatagramsIntact(t *testing.T) {
	p := getPKI(t)
	_, c, s := pair(t, p.serverConfig(), p.clientConfig())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const size = 1 << 20
	pat := make([]byte, size)
	for i := range pat {
		pat[i] = byte(i*7 + i/251)
	}
	serveStreams(ctx, s, func(st *Stream) {
		b := make([]byte, 3)
		for {
			if _, err := io.ReadFull(st, b); err != nil {
				return
			}
			// Writes of uneven sizes, so that packets and writes
			// rarely line up.
			for off := 0; off < size; {
				n := min(32<<10-off%1000, size-off)
				st.Write(pat[off : off+n])
				off += n
			}
		}
	})
	var g errgroup.Group
	for i := 0; i < 32; i++ {
		g.Go(func() error {
			st, err := c.OpenStream(ctx, 2)
			if err != nil {
				return err
			}
			got := make([]byte, size)
			for r := 0; r < 5; r++ {
				st.Write([]byte("GET"))
				if _, err := io.ReadFull(st, got); err != nil {
					return err
				}
				if i := firstDiff(got, pat); i >= 0 {
					return fmt.Errorf("stream %d round %d: byte %d differs", st.ID(), r, i)
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Error(err)
	}
}

// firstDiff is the index of the first byte where a and b differ, or -1.
func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	return -1
}
