package proxybench

import (
	"fmt"
	"slices"
)

// A single run's ratio on this 2-core machine moves from run to run: the
// lan urgent p99 against HTTP/2+BBR was 0.19–0.35 over seven runs of
// session 13 (bench/RESULTS.md). With --runs N the bench runs every peer N
// times, interleaved so that the machine's drift reaches all peers alike,
// and reports each ratio's median with its lowest and highest value.

// Ratio compares TMP with one peer on one body size: the median over the
// runs, and each ratio's range when there was more than one run.
type Ratio struct {
	Body    string  `json:"body"`
	Against string  `json:"against"`
	RPS     float64 `json:"rps"`      // TMP's req/s ÷ the peer's
	P99     float64 `json:"p99"`      // TMP's p99 ÷ the peer's
	BackCPU float64 `json:"back_cpu"` // TMP's back-end CPU/GB ÷ the peer's
	Runs    int     `json:"runs,omitempty"`

	RPSRange     []float64 `json:"rps_range,omitempty"`
	P99Range     []float64 `json:"p99_range,omitempty"`
	BackCPURange []float64 `json:"back_cpu_range,omitempty"`
}

// LinkRatio compares TMP with one peer across one emulated profile.
type LinkRatio struct {
	Profile   string  `json:"profile"`
	Against   string  `json:"against"`
	Goodput   float64 `json:"goodput"`    // TMP's goodput ÷ the peer's
	UrgentP99 float64 `json:"urgent_p99"` // TMP's urgent p99 ÷ the peer's
	Runs      int     `json:"runs"`

	GoodputRange   []float64 `json:"goodput_range,omitempty"`
	UrgentP99Range []float64 `json:"urgent_p99_range,omitempty"`
}

// spread is the median of xs and, for more than one value, [lowest,
// highest]. Zero values (a peer that measured nothing) are left out.
func spread(xs []float64) (median float64, rng []float64) {
	xs = slices.DeleteFunc(slices.Clone(xs), func(x float64) bool { return x == 0 })
	if len(xs) == 0 {
		return 0, nil
	}
	slices.Sort(xs)
	n := len(xs)
	median = xs[n/2]
	if n%2 == 0 {
		median = (xs[n/2-1] + xs[n/2]) / 2
	}
	if n > 1 {
		rng = []float64{xs[0], xs[n-1]}
	}
	return median, rng
}

// quotient is a ÷ b, or 0 when b is 0.
func quotient(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// ratios fills r.Ratios from r.Results: per body and TCP peer, TMP's ratio
// in each run, summarized.
func (r *Report) ratios() {
	for _, body := range []string{"1k", "1m"} {
		for _, peer := range Peers[1:4] {
			var rps, p99, cpu []float64
			for _, tmp := range r.Results {
				if tmp.Peer != "tmp" || tmp.Body != body {
					continue
				}
				p := r.find(peer, body, tmp.Run)
				if p == nil || p.RequestsSec == 0 {
					continue
				}
				rps = append(rps, quotient(tmp.RequestsSec, p.RequestsSec))
				p99 = append(p99, quotient(tmp.P99ms, p.P99ms))
				cpu = append(cpu, quotient(tmp.BackCPUPerGB, p.BackCPUPerGB))
			}
			if len(rps) == 0 {
				continue
			}
			rt := Ratio{Body: body, Against: peer, Runs: len(rps)}
			rt.RPS, rt.RPSRange = spread(rps)
			rt.P99, rt.P99Range = spread(p99)
			rt.BackCPU, rt.BackCPURange = spread(cpu)
			r.Ratios = append(r.Ratios, rt)
		}
	}
}

func (r *Report) find(peer, body string, run int) *Result {
	for i := range r.Results {
		if x := &r.Results[i]; x.Peer == peer && x.Body == body && x.Run == run {
			return x
		}
	}
	return nil
}

// linkRatios fills r.LinkRatios from r.Links: per profile and TCP peer,
// TMP's goodput and urgent p99 ratios in each run, summarized.
func (r *Report) linkRatios() {
	var profiles []string
	for _, x := range r.Links {
		if !slices.Contains(profiles, x.Profile) {
			profiles = append(profiles, x.Profile)
		}
	}
	for _, prof := range profiles {
		for _, lp := range linkPeers[1:] {
			var goodput, p99 []float64
			for _, tmp := range r.Links {
				if tmp.Peer != "tmp" || tmp.Profile != prof {
					continue
				}
				i := slices.IndexFunc(r.Links, func(x LinkResult) bool {
					return x.Profile == prof && x.Peer == lp.name && x.Run == tmp.Run
				})
				if i < 0 || r.Links[i].GoodputMbps == 0 {
					continue
				}
				goodput = append(goodput, quotient(tmp.GoodputMbps, r.Links[i].GoodputMbps))
				p99 = append(p99, quotient(tmp.UrgentP99ms, r.Links[i].UrgentP99ms))
			}
			if len(goodput) == 0 {
				continue
			}
			lr := LinkRatio{Profile: prof, Against: lp.name, Runs: len(goodput)}
			lr.Goodput, lr.GoodputRange = spread(goodput)
			lr.UrgentP99, lr.UrgentP99Range = spread(p99)
			r.LinkRatios = append(r.LinkRatios, lr)
		}
	}
}

// cell renders a ratio, with its range when it has one.
func cell(median float64, rng []float64) string {
	if len(rng) == 2 {
		return fmt.Sprintf("%.2f (%.2f–%.2f)", median, rng[0], rng[1])
	}
	return fmt.Sprintf("%.2f", median)
}
