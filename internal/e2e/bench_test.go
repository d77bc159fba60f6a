package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/conductor-edge/conductor/internal/topology"
)

// BenchmarkProxy compares, in one run on loopback, a Caddy front-end reaching
// a Caddy back-end over TMP with the same pair over Caddy's own http
// transport (HTTP/1.1 keep-alive, and h2c). Small responses (100 bytes), 32
// clients in parallel; it reports requests/s and the p99 latency.
//
//	go test -run '^$' -bench Proxy -benchtime 20000x ./internal/e2e/
func BenchmarkProxy(b *testing.B) {
	for _, tr := range []string{"tmp", "http1", "h2c"} {
		b.Run(tr, func(b *testing.B) {
			admin := freeAdminBase(b, 2)
			opts := topology.Options{
				Binary:     binary,
				Dir:        filepath.Join(tmpDir, "bench-"+tr),
				OriginAddr: fmt.Sprintf("127.0.0.1:%d", freePort(b, "127.0.0.1")),
				BackendTMP: fmt.Sprintf("127.0.0.1:%d", freePort(b, "127.0.0.1")),
				Frontends:  []string{fmt.Sprintf("127.0.0.4:%d", freePort(b, "127.0.0.4"))},
				AdminBase:  admin,
				Transport:  tr,
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			tp, err := topology.Start(ctx, opts)
			if err != nil {
				b.Fatal(err)
			}
			defer tp.Stop()
			url := tp.FrontendURL(0) + "/bytes/100"
			c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 30 * time.Second}
			do := func() error {
				resp, err := c.Get(url)
				if err != nil {
					return err
				}
				n, _ := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || n != 100 {
					return fmt.Errorf("status %d, %d bytes", resp.StatusCode, n)
				}
				return nil
			}
			for i := 0; i < 500; i++ { // warm up connections and sessions
				if err := do(); err != nil {
					b.Fatal(err)
				}
			}
			const workers = 32
			lat := make([]time.Duration, b.N)
			var wg sync.WaitGroup
			next := make(chan int, workers)
			b.ResetTimer()
			start := time.Now()
			for w := 0; w < workers; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range next {
						t0 := time.Now()
						if err := do(); err != nil {
							b.Error(err)
						}
						lat[i] = time.Since(t0)
					}
				}()
			}
			for i := 0; i < b.N; i++ {
				next <- i
			}
			close(next)
			wg.Wait()
			el := time.Since(start)
			b.StopTimer()
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			b.ReportMetric(float64(b.N)/el.Seconds(), "req/s")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99_ms")
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50_ms")
		})
	}
}
