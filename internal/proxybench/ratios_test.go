package proxybench

import (
	"slices"
	"strings"
	"testing"

	"github.com/conductor-edge/conductor/internal/benchinfo"
)

func TestSpreadIsTheMedianAndTheRange(t *testing.T) {
	for _, c := range []struct {
		in     []float64
		median float64
		rng    []float64
	}{
		{nil, 0, nil},
		{[]float64{0.9}, 0.9, nil},
		{[]float64{0.3, 0.1, 0.2}, 0.2, []float64{0.1, 0.3}},
		{[]float64{0.4, 0.1, 0.2, 0.3}, 0.25, []float64{0.1, 0.4}},
		// A peer that measured nothing in a run does not count.
		{[]float64{0, 0.5, 0.7}, 0.6, []float64{0.5, 0.7}},
	} {
		m, r := spread(c.in)
		if m != c.median || !slices.Equal(r, c.rng) {
			t.Errorf("spread(%v) = %v, %v; want %v, %v", c.in, m, r, c.median, c.rng)
		}
	}
}

// Ratios pair TMP with each peer in the same run, never across runs.
func TestRatiosPairPeersWithinARun(t *testing.T) {
	res := func(peer string, run int, rps, p99, cpu float64) Result {
		return Result{Peer: peer, Body: "1m", Run: run, Wrk: benchinfo.Wrk{RequestsSec: rps, P99ms: p99}, BackCPUPerGB: cpu}
	}
	r := &Report{Results: []Result{
		res("tmp", 1, 500, 200, 1.5), res("h1-tls", 1, 800, 100, 1.0),
		res("tmp", 2, 600, 100, 1.5), res("h1-tls", 2, 750, 200, 1.0),
		res("tmp", 3, 700, 150, 1.0), res("h1-tls", 3, 1000, 150, 1.0),
	}}
	r.ratios()
	if len(r.Ratios) != 1 {
		t.Fatalf("ratios: %+v, want one against h1-tls", r.Ratios)
	}
	x := r.Ratios[0]
	// Per run: req/s 0.625, 0.8, 0.7; p99 2, 0.5, 1; CPU 1.5, 1.5, 1.
	if x.Against != "h1-tls" || x.Runs != 3 || x.RPS != 0.7 || !slices.Equal(x.RPSRange, []float64{0.625, 0.8}) {
		t.Errorf("req/s ratio %+v, want median 0.7 of 0.625–0.8 over 3 runs", x)
	}
	if x.P99 != 1 || !slices.Equal(x.P99Range, []float64{0.5, 2}) || x.BackCPU != 1.5 {
		t.Errorf("p99 and CPU ratios %+v, want p99 1 (0.5–2) and CPU 1.5", x)
	}
	if got := cell(x.RPS, x.RPSRange); got != "0.70 (0.62–0.80)" {
		t.Errorf("cell %q", got)
	}
}

func TestLinkRatiosPairPeersWithinARun(t *testing.T) {
	link := func(peer string, run int, goodput, p99 float64) LinkResult {
		return LinkResult{Profile: "lan", Peer: peer, Run: run, GoodputMbps: goodput, UrgentP99ms: p99}
	}
	r := &Report{Links: []LinkResult{
		link("tmp", 1, 750, 15), link("h2-tls-bbr", 1, 830, 60),
		link("tmp", 2, 760, 21), link("h2-tls-bbr", 2, 800, 60),
		link("h2-tls-cubic", 2, 400, 70),
	}}
	r.linkRatios()
	var bbr, cubic *LinkRatio
	for i := range r.LinkRatios {
		switch r.LinkRatios[i].Against {
		case "h2-tls-bbr":
			bbr = &r.LinkRatios[i]
		case "h2-tls-cubic":
			cubic = &r.LinkRatios[i]
		}
	}
	if bbr == nil || bbr.Runs != 2 || bbr.UrgentP99 != 0.3 || !slices.Equal(bbr.UrgentP99Range, []float64{0.25, 0.35}) {
		t.Errorf("against h2-tls-bbr: %+v, want urgent p99 0.3 (0.25–0.35) over 2 runs", bbr)
	}
	if cubic == nil || cubic.Runs != 1 || cubic.Goodput != 1.9 || cubic.GoodputRange != nil {
		t.Errorf("against h2-tls-cubic, measured in run 2 only: %+v, want goodput 1.9 from that run alone", cubic)
	}
	if tab := r.linksTable(); !strings.Contains(tab, "| lan | h2-tls-bbr | 0.93 (0.90–0.95) | 0.30 (0.25–0.35) | 2 |") {
		t.Errorf("the table has no ratio row for h2-tls-bbr:\n%s", tab)
	}
}
