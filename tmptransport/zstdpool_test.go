package tmptransport

import (
	"bytes"
	"context"
	"io"
	"runtime"
	"testing"
	"time"
)

// A session's compressed streams reuse zstd encoders and decoders
// (zstdpool.go): a stream per small request does not allocate and clear a
// fresh 1 MiB history at each end, as it did (785 against 9 240 requests/s
// in bench proxy at 1 kB).
func TestCompressedStreamsReuseCoders(t *testing.T) {
	p := getPKI(t)
	_, c, s := pair(t, p.serverConfig(), p.clientConfig())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	serveStreams(ctx, s, func(st *Stream) {
		b, _ := io.ReadAll(st)
		st.Write(b)
		st.Close()
	})
	msg := bytes.Repeat([]byte("GET /product/42 HTTP/1.1\r\nHost: shop\r\n\r\n"), 20)
	exchange := func() {
		st, err := c.OpenStreamOptions(ctx, OpenStreamOptions{Priority: 2, Compress: true})
		if err != nil {
			t.Fatal(err)
		}
		st.Write(msg)
		st.CloseWrite()
		got, err := io.ReadAll(st)
		if err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("echo: %d bytes, %v", len(got), err)
		}
		st.Close()
	}
	for range 10 {
		exchange() // fill the pools
	}
	const n = 50
	made := func() int64 { return c.zstd.made.Load() + s.zstd.made.Load() }
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	before := made()
	for range n {
		exchange()
	}
	runtime.ReadMemStats(&m1)
	built := float64(made()-before) / n
	t.Logf("%.2f coders built and %d bytes allocated per compressed exchange (4 coders take part)", built, (m1.TotalAlloc-m0.TotalAlloc)/n)
	// Without the pools each exchange built 4. The race detector makes
	// sync.Pool drop a quarter of what it is given.
	bound := 0.2
	if raceEnabled {
		bound = 2
	}
	if built > bound {
		t.Errorf("%.2f zstd coders built per exchange, want at most %.1f", built, bound)
	}
}
