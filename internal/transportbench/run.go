package transportbench

import (
	"context"
	"fmt"
	"io"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/conductor-edge/conductor/internal/wan"
)

// ProfileSpec is a WAN profile: round trip, loss on the download direction,
// and bottleneck rate.
type ProfileSpec struct {
	Name    string
	RTT     time.Duration
	Loss    float64
	Bursty  bool
	RateBps float64
}

// Profiles are the four: RTT / loss / bottleneck.
var Profiles = []ProfileSpec{
	{"lan", time.Millisecond, 0, false, 1e9},
	{"continental", 40 * time.Millisecond, 0.001, false, 200e6},
	{"lossy", 80 * time.Millisecond, 0.01, false, 100e6},
	{"mobile", 150 * time.Millisecond, 0.03, true, 20e6},
}

// ProfileByName finds a profile.
func ProfileByName(name string) (ProfileSpec, bool) {
	for _, p := range Profiles {
		if p.Name == name {
			return p, true
		}
	}
	return ProfileSpec{}, false
}

// Link makes the profile's emulated link; cc, if set, is the congestion
// control TCP uses in its namespaces.
func (p ProfileSpec) Link(cc string) (*wan.Link, error) {
	down := wan.Profile{Delay: p.RTT / 2, RateBps: p.RateBps}
	if p.Bursty {
		// Gilbert–Elliott with the same mean loss, in bursts of ~3 packets.
		down.Burst = &wan.GilbertElliott{P: 0.3 * p.Loss / (1 - p.Loss), R: 0.3, LossBad: 1}
	} else {
		down.Loss = p.Loss
	}
	// wan.New takes A→B first: the upload (requests, ACKs) is clean.
	return wan.NewCC(wan.Profile{Delay: p.RTT / 2}, down, cc)
}

// Result is what one peer did on one profile. Fields the run did not
// measure are null in JSON.
type Result struct {
	GoodputMbps     float64  `json:"goodput_mbps"`
	P50UrgentMs     float64  `json:"p50_ms_urgent"`
	P99UrgentMs     float64  `json:"p99_ms_urgent"`
	WarmRequestMs   float64  `json:"warm_request_ms"`
	ColdRequestMs   float64  `json:"cold_request_ms"`
	Share           *float64 `json:"share"`
	CompetitorRatio *float64 `json:"competitor_ratio"`
	RetransmitRatio *float64 `json:"retransmit_ratio"`
	// LinkUtilization is the bottleneck's busy share during the bulk
	// workload: IP bytes delivered downstream over what the rate allows.
	// Against goodput it shows what each protocol's headers cost.
	LinkUtilization float64  `json:"link_utilization"`
	CPUSeconds      float64  `json:"cpu_seconds"`
	Errors          []string `json:"errors,omitempty"`
}

// Options configure a run.
type Options struct {
	Profiles []ProfileSpec
	Peers    []string // JSON keys; empty: all
	Duration time.Duration
	Progress io.Writer
}

// Report maps profile → peer → result.
type Report map[string]map[string]*Result

// Run runs every workload for every peer on every profile.
func Run(ctx context.Context, o Options) (Report, error) {
	if o.Duration == 0 {
		o.Duration = 15 * time.Second
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	peers := Peers()
	if len(o.Peers) > 0 {
		var sel []Peer
		for _, k := range o.Peers {
			found := false
			for _, p := range peers {
				if p.Name() == k {
					sel = append(sel, p)
					found = true
				}
			}
			if !found {
				return nil, fmt.Errorf("%w: %q", errNoPeer, k)
			}
		}
		peers = sel
	}
	rep := Report{}
	for _, prof := range o.Profiles {
		rep[prof.Name] = map[string]*Result{}
		var baseline int64 // what M TCP flows get against N TCP flows on this profile
		for _, peer := range peers {
			fmt.Fprintf(o.Progress, "[%s] %s: RTT %v, loss %.1f%%, %.0f Mbit/s …\n", prof.Name, peer.Name(), prof.RTT, prof.Loss*100, prof.RateBps/1e6)
			r, err := runOne(ctx, prof, peer, o, &baseline)
			if err != nil {
				return rep, fmt.Errorf("%s/%s: %w", prof.Name, peer.Name(), err)
			}
			rep[prof.Name][peer.Name()] = r
			fmt.Fprintf(o.Progress, "[%s] %s: goodput %.1f Mbit/s (link %.1f %% busy), urgent p99 %.0f ms, warm %.1f ms, cold %.1f ms, share %.2f, competitor ratio %.2f, %d errors\n",
				prof.Name, peer.Name(), r.GoodputMbps, 100*r.LinkUtilization, r.P99UrgentMs, r.WarmRequestMs, r.ColdRequestMs, deref(r.Share), deref(r.CompetitorRatio), len(r.Errors))
		}
	}
	return rep, nil
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func runOne(ctx context.Context, prof ProfileSpec, peer Peer, o Options, baseline *int64) (*Result, error) {
	l, err := prof.Link("")
	if err != nil {
		return nil, err
	}
	defer l.Close()
	stop, err := peer.Serve(l)
	if err != nil {
		return nil, err
	}
	defer stop()
	cpu0 := cpuTime()
	r := &Result{}
	var errMu sync.Mutex
	report := func(err error) {
		errMu.Lock()
		defer errMu.Unlock()
		if len(r.Errors) < 10 {
			r.Errors = append(r.Errors, err.Error())
		}
	}

	// (c) first: a cold request (dial + request), then warm ones.
	var cold []float64
	var c Client
	for i := 0; i < 3; i++ {
		t0 := time.Now()
		cc, err := peer.Dial(ctx, l)
		if err != nil {
			return nil, fmt.Errorf("dial: %w", err)
		}
		if _, err := cc.Get(ctx, 1000, false); err != nil {
			report(err)
		}
		cold = append(cold, ms(time.Since(t0)))
		if c != nil {
			c.Close()
		}
		c = cc
	}
	defer c.Close()
	var warm []float64
	for i := 0; i < 10; i++ {
		t0 := time.Now()
		if _, err := c.Get(ctx, 1000, false); err != nil {
			report(err)
		}
		warm = append(warm, ms(time.Since(t0)))
	}
	r.ColdRequestMs, r.WarmRequestMs = median(cold), median(warm)

	// (a) bulk: 32 parallel 4 MB downloads, repeated for the duration.
	rc, hasRC := peer.(retransmitCounter)
	var re0, sent0 uint64
	if hasRC {
		re0, sent0, hasRC = rc.counters(l)
	}
	_, down0 := l.Stats()
	bytes := bulk(ctx, c, o.Duration, report, nil)
	_, down1 := l.Stats()
	r.LinkUtilization = float64(down1.DeliveredBytes-down0.DeliveredBytes) * 8 / o.Duration.Seconds() / prof.RateBps
	r.GoodputMbps = float64(bytes) * 8 / o.Duration.Seconds() / 1e6
	if hasRC {
		if re1, sent1, ok := rc.counters(l); ok && sent1 > sent0 {
			ratio := float64(re1-re0) / float64(sent1-sent0)
			r.RetransmitRatio = &ratio
		}
	}

	// (b) mixed: the same bulk, plus a 10 kB urgent request every 100 ms.
	var lat []float64
	var latMu sync.Mutex
	var issued atomic.Int64
	bulk(ctx, c, o.Duration, report, func(bctx context.Context) {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		var wg sync.WaitGroup
		// Stop asking 2 s before the end, so that every urgent request
		// has had time to finish; one that has not took at least that.
		deadline, _ := bctx.Deadline()
		for {
			select {
			case <-bctx.Done():
				wg.Wait()
				return
			case <-t.C:
			}
			if time.Until(deadline) < 2*time.Second {
				continue
			}
			wg.Add(1)
			issued.Add(1)
			go func() {
				defer wg.Done()
				t0 := time.Now()
				if _, err := c.Get(bctx, 10_000, true); err != nil {
					if bctx.Err() == nil {
						report(err)
					}
					return
				}
				latMu.Lock()
				lat = append(lat, ms(time.Since(t0)))
				latMu.Unlock()
			}()
		}
	})
	// Urgent requests still waiting when the run ended took at least
	// until then: count them at the run's length (a lower bound).
	if missing := issued.Load() - int64(len(lat)); missing > 0 {
		report(fmt.Errorf("%d of %d urgent requests did not finish within the run (counted as 2 s, a lower bound)", missing, issued.Load()))
		for ; missing > 0; missing-- {
			lat = append(lat, 2000)
		}
	}
	r.P50UrgentMs, r.P99UrgentMs = percentile(lat, 0.5), percentile(lat, 0.99)

	// (d) friendliness against plain TCP.
	share, ratio := friendliness(ctx, l, c, o.Duration, baseline)
	r.Share, r.CompetitorRatio = &share, &ratio
	r.CPUSeconds = (cpuTime() - cpu0).Seconds()
	return r, nil
}

// bulk runs 32 download loops of 4 MB for d and returns the bytes moved
// (partial downloads count). side, if set, runs alongside.
func bulk(ctx context.Context, c Client, d time.Duration, report func(error), side func(context.Context)) int64 {
	bctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var total atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for bctx.Err() == nil {
				n, err := c.Get(bctx, 4<<20, false)
				total.Add(n)
				if err != nil && bctx.Err() == nil {
					report(err)
				}
			}
		}()
	}
	if side != nil {
		wg.Add(1)
		go func() { defer wg.Done(); side(bctx) }()
	}
	wg.Wait()
	return total.Load()
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func median(v []float64) float64 { return percentile(v, 0.5) }

func percentile(v []float64, q float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[min(int(q*float64(len(s))), len(s)-1)]
}
