package proxybench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/conductor-edge/conductor/internal/benchinfo"
	"github.com/conductor-edge/conductor/internal/nscaddy"
	"github.com/conductor-edge/conductor/internal/transportbench"
	"github.com/conductor-edge/conductor/internal/wan"
)

// Across an emulated link: the front-end Caddy in namespace A, the
// back-end Caddy and nginx in B. Each peer runs two workloads at once for
// the duration: 32 clients downloading 4 MB bodies back to back (goodput),
// and one client asking for 1 kB every 20 ms marked urgent (X-Urgent: the
// front-end's `priority` makes it 0, which TMP sends first and HTTP/2
// cannot). TCP peers run with Cubic and with BBR (the namespaces' default
// congestion control when the link is made).

// LinkResult is one peer on one profile.
type LinkResult struct {
	Profile       string  `json:"profile"`
	Peer          string  `json:"peer"`
	Run           int     `json:"run"` // 1, 2, … of Options.Runs
	GoodputMbps   float64 `json:"goodput_mbps"`
	UrgentP50ms   float64 `json:"urgent_p50_ms"`
	UrgentP99ms   float64 `json:"urgent_p99_ms"`
	Errors        int     `json:"errors"`
	FrontCPUPerGB float64 `json:"front_cpu_s_per_gb"`
	BackCPUPerGB  float64 `json:"back_cpu_s_per_gb"`
	// LinkUtilization is the share of the downstream bottleneck's rate
	// that carried packets (headers, resent data and all), and QueueDrops
	// the share of the packets offered to it that its drop-tail queue
	// refused: what each peer's congestion response costs the link.
	LinkUtilization float64 `json:"link_utilization"`
	QueueDrops      float64 `json:"queue_drops"`
	// LinkLateP99ms is how late the emulator let the 99th percentile of
	// that direction's packets leave, against the profile's timing: the
	// emulator shares the machine with both Caddys (wan/late.go).
	LinkLateP99ms float64 `json:"link_late_p99_ms"`
}

// linkPeers: name, the front-end's transport, and the TCP congestion
// control ("" for TMP, which brings its own).
var linkPeers = []struct{ name, peer, cc string }{
	{"tmp", "tmp", ""},
	{"h2-tls-cubic", "h2-tls", "cubic"},
	{"h2-tls-bbr", "h2-tls", "bbr"},
	{"h1-tls-bbr", "h1-tls", "bbr"},
}

func runProfiles(ctx context.Context, o Options) (*Report, error) {
	rep := &Report{When: time.Now().UTC(), Machine: benchinfo.Machine(), Conns: 32, GoMaxProcs: o.GoMaxProcs}
	for _, spec := range o.Profiles {
		for run := 1; run <= o.Runs; run++ {
			for _, lp := range linkPeers {
				if len(o.Peers) > 0 && !slices.Contains(o.Peers, lp.name) && !slices.Contains(o.Peers, lp.peer) {
					continue
				}
				r, err := runLink(ctx, o, spec, lp.name, lp.peer, lp.cc, run)
				if err != nil {
					return nil, fmt.Errorf("%s %s: %w", spec.Name, lp.name, err)
				}
				o.Progress("%-12s %-13s goodput %7.1f Mbit/s  urgent p50 %6.1f ms p99 %6.1f ms  CPU s/GB front %5.1f back %5.1f  link %3.0f %%, queue drops %4.1f %%, late p99 %.1f ms  errors %d%s",
					spec.Name, lp.name, r.GoodputMbps, r.UrgentP50ms, r.UrgentP99ms, r.FrontCPUPerGB, r.BackCPUPerGB, 100*r.LinkUtilization, 100*r.QueueDrops, r.LinkLateP99ms, r.Errors, o.runNote(run))
				rep.Links = append(rep.Links, r)
			}
		}
	}
	rep.linkRatios()
	return rep, nil
}

func runLink(ctx context.Context, o Options, spec transportbench.ProfileSpec, name, peer, cc string, run int) (LinkResult, error) {
	res := LinkResult{Profile: spec.Name, Peer: name, Run: run}
	dir := filepath.Join(o.Dir, spec.Name+"-"+name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return res, err
	}
	l, err := spec.Link(cc)
	if err != nil {
		return res, err
	}
	defer l.Close()
	stopOrigin, err := startNginx(dir, l.NSB, "127.0.0.1")
	if err != nil {
		return res, err
	}
	defer stopOrigin()
	back, err := nscaddy.Start(ctx, dir, "backend", l.NSB, linkBackend(dir, l), o.Binary, o.caddyEnv()...)
	if err != nil {
		return res, err
	}
	defer back.Stop()
	front, err := nscaddy.Start(ctx, dir, "frontend", l.NSA, linkFrontend(dir, l, peer), o.Binary, o.caddyEnv()...)
	if err != nil {
		return res, err
	}
	defer front.Stop()
	client := &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 64,
		DialContext: func(ctx context.Context, network, addr string) (c net.Conn, err error) {
			err = l.InA(func() (err error) {
				c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
				return
			})
			return
		}}}
	defer client.CloseIdleConnections()
	base := fmt.Sprintf("http://127.0.0.1:%d", frontBase)
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := client.Get(base + "/1k")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			return res, fmt.Errorf("the front-end does not answer: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	var moved atomic.Int64
	var errs atomic.Int32
	var mu sync.Mutex
	var urgent []time.Duration
	lctx, cancel := context.WithTimeout(ctx, o.Duration)
	defer cancel()
	profiles := o.profileBoth(ctx, dir, peer, spec.Name+"-"+name+o.runSuffix(run))
	fc, bc := front.CPU(), back.CPU()
	_, down0 := l.Stats()
	start := time.Now()
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for lctx.Err() == nil {
				req, _ := http.NewRequestWithContext(lctx, http.MethodGet, base+"/4m", nil)
				resp, err := client.Do(req)
				if err != nil {
					if lctx.Err() == nil {
						errs.Add(1)
					}
					continue
				}
				n, _ := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				moved.Add(n)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-lctx.Done():
				return
			case <-tick.C:
			}
			req, _ := http.NewRequestWithContext(lctx, http.MethodGet, base+"/1k", nil)
			req.Header.Set("X-Urgent", "1")
			s := time.Now()
			resp, err := client.Do(req)
			if err != nil {
				if lctx.Err() == nil {
					errs.Add(1)
				}
				continue
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			mu.Lock()
			urgent = append(urgent, time.Since(s))
			mu.Unlock()
		}
	}()
	wg.Wait()
	took := time.Since(start).Seconds()
	_, down1 := l.Stats()
	if spec.RateBps > 0 {
		res.LinkUtilization = float64(down1.DeliveredBytes-down0.DeliveredBytes) * 8 / took / spec.RateBps
	}
	if offered := down1.Packets - down0.Packets; offered > 0 {
		res.QueueDrops = float64(down1.DroppedQueue-down0.DroppedQueue) / float64(offered)
	}
	res.LinkLateP99ms = float64(down1.Late.Since(down0.Late).Quantile(0.99).Microseconds()) / 1000
	profiles()
	fc, bc = front.CPU()-fc, back.CPU()-bc
	if demoted, err := urgentDemoted(ctx, dir); err != nil {
		return res, err
	} else if demoted > 0 {
		return res, fmt.Errorf("the front-end's priority handler demoted %d urgent requests: the urgent p99 would measure the default priority (raise urgentBudget)", demoted)
	}
	res.GoodputMbps = float64(moved.Load()) * 8 / took / 1e6
	res.Errors = int(errs.Load())
	if gb := float64(moved.Load()) / 1e9; gb > 0 {
		res.FrontCPUPerGB, res.BackCPUPerGB = fc/gb, bc/gb
	}
	slices.Sort(urgent)
	if n := len(urgent); n > 0 {
		res.UrgentP50ms = float64(urgent[n/2].Microseconds()) / 1000
		res.UrgentP99ms = float64(urgent[n*99/100].Microseconds()) / 1000
	}
	return res, nil
}

// linkBackend: in namespace B, beside nginx.
func linkBackend(dir string, l *wan.Link) string {
	return globals(dir, "backend", "\tconductor {\n\t\tname be1\n\t\trole backend\n\t}\n") +
		fmt.Sprintf("http://:%d {\n\tbind tmp/%s\n\t%s\n}\n", tmpPort, l.AddrB, toOrigin) +
		fmt.Sprintf("https://%s:%d {\n\ttls internal\n\t%s\n}\n", l.AddrB, tlsPort, toOrigin)
}

// urgentBudget is the front-end's bypass budget in the benchmark: the one
// urgent client stands for many shoppers (50 requests a second), past the
// default budget of 2 a second per client address, which would class all
// but the first few as the default priority (bench/RESULTS.md, session 13).
const urgentBudget = "bypass_budget 100 burst 100"

// linkFrontend: in namespace A, one site for the peer, urgent requests
// at priority 0.
func linkFrontend(dir string, l *wan.Link, peer string) string {
	upstream, transport := fmt.Sprintf("%s:%d", l.AddrB, tmpPort), "transport tmp"
	switch peer {
	case "h2-tls":
		upstream, transport = fmt.Sprintf("https://%s:%d", l.AddrB, tlsPort), "transport http {\n\t\t\tversions 2\n\t\t\ttls_insecure_skip_verify\n\t\t}"
	case "h1-tls":
		upstream, transport = fmt.Sprintf("https://%s:%d", l.AddrB, tlsPort), "transport http {\n\t\t\tversions 1.1\n\t\t\ttls_insecure_skip_verify\n\t\t\tkeepalive_idle_conns_per_host 64\n\t\t}"
	}
	return globals(dir, "frontend", "\tconductor {\n\t\tname fe1\n\t\trole frontend\n\t}\n") +
		fmt.Sprintf("http://127.0.0.1:%d {\n\tpriority {\n\t\t0 header X-Urgent 1\n\t\t%s\n\t}\n\treverse_proxy %s {\n\t\t%s\n\t}\n}\n", frontBase, urgentBudget, upstream, transport)
}

// LinksTable renders the emulated profiles' results as Markdown.
func (r *Report) linksTable() string {
	var b strings.Builder
	fmt.Fprintf(&b, "| profile | peer | run | goodput Mbit/s | urgent p50 ms | urgent p99 ms | front CPU s/GB | back CPU s/GB | link busy | queue drops | link late p99 ms | errors |\n| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, x := range r.Links {
		fmt.Fprintf(&b, "| %s | %s | %d | %.1f | %.1f | %.1f | %.1f | %.1f | %.0f %% | %.1f %% | %.1f | %d |\n", x.Profile, x.Peer, x.Run, x.GoodputMbps, x.UrgentP50ms, x.UrgentP99ms, x.FrontCPUPerGB, x.BackCPUPerGB, 100*x.LinkUtilization, 100*x.QueueDrops, x.LinkLateP99ms, x.Errors)
	}
	if len(r.LinkRatios) > 0 {
		fmt.Fprintf(&b, "\n| profile | TMP against | goodput × | urgent p99 × | runs |\n| --- | --- | ---: | ---: | ---: |\n")
		for _, x := range r.LinkRatios {
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %d |\n", x.Profile, x.Against, cell(x.Goodput, x.GoodputRange), cell(x.UrgentP99, x.UrgentP99Range), x.Runs)
		}
	}
	return b.String()
}

// urgentDemoted reads from the front-end's metrics how many requests the
// priority handler made urgent and its bypass budget demoted.
func urgentDemoted(ctx context.Context, dir string) (int, error) {
	body, err := adminGet(ctx, dir, "frontend", "/metrics")
	if err != nil {
		return 0, err
	}
	defer body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(body)
	if err != nil {
		return 0, fmt.Errorf("the front-end's metrics: %w", err)
	}
	f, ok := families["conductor_priority_demoted_total"]
	if !ok || len(f.GetMetric()) == 0 {
		return 0, errors.New("the front-end's metrics have no conductor_priority_demoted_total")
	}
	return int(f.GetMetric()[0].GetCounter().GetValue()), nil
}
