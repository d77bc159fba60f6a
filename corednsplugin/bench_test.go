package corednsplugin

import (
	"context"
	"net"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/file"
	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/coredns/coredns/plugin/test"
	"github.com/miekg/dns"
)

// BenchmarkServeDNS compares, in one run, the conductor plugin choosing
// among four front-ends (regions, weights, health) with CoreDNS's file
// plugin answering a static A record for the same name — the cheapest
// authoritative answer CoreDNS gives. Both are driven in-process through
// ServeDNS, in parallel, so the figure is the plugin's own cost; a network
// server in front adds the same to both. It also reports the p99 of one
// conductor decision.
//
//	go test -run '^$' -bench ServeDNS ./corednsplugin/
func BenchmarkServeDNS(b *testing.B) {
	fp, cp := benchPlugins(b)
	msg := func() *dns.Msg {
		m := new(dns.Msg)
		m.SetQuestion("shop.example.", dns.TypeA)
		m.SetEdns0(1232, false)
		m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: []byte{10, 1, 3, 0}})
		return m
	}
	for _, p := range []struct {
		name string
		h    plugin.Handler
	}{{"file", fp}, {"conductor", cp}} {
		b.Run(p.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				m := msg()
				for pb.Next() {
					rec := dnstest.NewRecorder(&test.ResponseWriter{})
					if _, err := p.h.ServeDNS(context.Background(), rec, m); err != nil || len(rec.Msg.Answer) != 1 {
						b.Fatalf("%v %v", err, rec.Msg)
					}
				}
			})
		})
	}
	b.Run("conductor-decision-p99", func(b *testing.B) {
		m := msg()
		lat := make([]time.Duration, b.N)
		for i := 0; i < b.N; i++ {
			rec := dnstest.NewRecorder(&test.ResponseWriter{})
			t0 := time.Now()
			cp.ServeDNS(context.Background(), rec, m)
			lat[i] = time.Since(t0)
		}
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1000, "p99_µs")
	})
}

// BenchmarkQueriesOverUDP is the same comparison as dnsperf makes: each
// plugin behind a real UDP DNS server on loopback, 32 clients sending
// queries with miekg/dns, in one run.
func BenchmarkQueriesOverUDP(b *testing.B) {
	fp, cp := benchPlugins(b)
	for _, p := range []struct {
		name string
		h    plugin.Handler
	}{{"file", fp}, {"conductor", cp}} {
		b.Run(p.name, func(b *testing.B) {
			pc, err := net.ListenPacket("udp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
				p.h.ServeDNS(context.Background(), w, r)
			})}
			go srv.ActivateAndServe()
			defer srv.Shutdown()
			addr := pc.LocalAddr().String()
			var wg sync.WaitGroup
			next := make(chan struct{}, 64)
			b.ResetTimer()
			for w := 0; w < 32; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					c := &dns.Client{Timeout: 2 * time.Second}
					conn, err := c.Dial(addr)
					if err != nil {
						b.Error(err)
						return
					}
					defer conn.Close()
					m := new(dns.Msg)
					m.SetQuestion("shop.example.", dns.TypeA)
					for range next {
						r, _, err := c.ExchangeWithConn(m, conn)
						if err != nil || len(r.Answer) != 1 {
							b.Errorf("%v %v", err, r)
							return
						}
					}
				}()
			}
			for i := 0; i < b.N; i++ {
				next <- struct{}{}
			}
			close(next)
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "queries/s")
		})
	}
}

// benchPlugins returns the file plugin serving shop.example's A record and
// a conductor plugin choosing among four front-ends for the same name.
func benchPlugins(b *testing.B) (file.File, *Handler) {
	zone := `$ORIGIN shop.example.
@ 30 IN SOA ns.shop.example. hostmaster.shop.example. 1 7200 1800 86400 30
@ 30 IN A 127.0.0.2
`
	z, err := file.Parse(strings.NewReader(zone), "shop.example.", "stdin", 0)
	if err != nil {
		b.Fatal(err)
	}
	fp := file.File{Next: test.ErrorHandler(), Zones: file.Zones{Z: map[string]*file.Zone{"shop.example.": z}, Names: []string{"shop.example."}}}
	cp := handlerFor(b, `conductor shop.example {
		frontend fe1 127.0.0.2 region eu weight 3
		frontend fe2 127.0.0.3 region eu weight 1
		frontend fe3 127.0.0.4 region us weight 2
		frontend fe4 127.0.0.5 region us weight 2
		region 10.1.0.0/16 eu
		region 10.2.0.0/16 us
		fallback 192.0.2.10
	}`)
	return fp, cp
}
