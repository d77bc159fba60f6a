package transportbench

import (
	"context"
	"errors"
	"flag"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/conductor-edge/conductor/internal/wan"
)

var (
	benchDuration = flag.Duration("transport.duration", 5*time.Second, "length of each bulk workload in BenchmarkTransport")
	benchProfiles = flag.String("transport.profiles", "lossy", "comma-separated profiles for BenchmarkTransport (or all)")
)

// BenchmarkTransport is the `go test -bench` form of `conductor bench
// transport`: every peer on the same emulated link, one sub-benchmark each,
// with the run's figures as custom metrics. Each iteration is a whole run, so
// use -benchtime 1x:
//
//	go test -run '^$' -bench Transport -benchtime 1x ./internal/transportbench/ -transport.profiles continental,lossy
func BenchmarkTransport(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root: network namespaces and TUN devices")
	}
	var profiles []ProfileSpec
	if *benchProfiles == "all" {
		profiles = Profiles
	} else {
		for _, name := range strings.Split(*benchProfiles, ",") {
			p, ok := ProfileByName(strings.TrimSpace(name))
			if !ok {
				b.Fatalf("unknown profile %q", name)
			}
			profiles = append(profiles, p)
		}
	}
	for _, prof := range profiles {
		b.Run(prof.Name, func(b *testing.B) {
			for _, peer := range Peers() {
				b.Run(peer.Name(), func(b *testing.B) {
					var r *Result
					for i := 0; i < b.N; i++ {
						rep, err := Run(context.Background(), Options{Profiles: []ProfileSpec{prof}, Peers: []string{peer.Name()}, Duration: *benchDuration, Progress: io.Discard})
						if errors.Is(err, wan.ErrNotRoot) {
							b.Skip("needs root")
						}
						if err != nil {
							b.Fatal(err)
						}
						r = rep[prof.Name][peer.Name()]
					}
					b.ReportMetric(r.GoodputMbps, "goodput-Mbit/s")
					b.ReportMetric(100*r.LinkUtilization, "link-busy-%")
					b.ReportMetric(r.P99UrgentMs, "urgent-p99-ms")
					b.ReportMetric(r.WarmRequestMs, "warm-ms")
					b.ReportMetric(r.ColdRequestMs, "cold-ms")
					b.ReportMetric(deref(r.CompetitorRatio), "competitor-ratio")
					b.ReportMetric(0, "ns/op")
					if len(r.Errors) > 0 {
						b.Logf("%s: %v", peer.Name(), r.Errors)
					}
				})
			}
		})
	}
}
