package shifting

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// Policy decides which front-ends serve a site, from demand (requests/s
// per region, from the front-ends' reports), node load and health.
//
//   - Demand per region is an EWMA of what the site's front-ends in that
//     region served; its trend (the EWMA's last step) lets placement act
//     ahead of demand: the next interval's demand is estimated as EWMA +
//     Ahead × trend.
//   - A site gets one more front-end when its estimated demand per
//     assigned, healthy front-end exceeds TargetRPS, or when one of them
//     is overloaded (load > MaxLoad). The new one is the healthy,
//     least-loaded front-end not yet serving the site, preferring the
//     region with the most demand.
//   - A placement-made assignment is released once demand would stay
//     under ReleaseAt × TargetRPS per front-end without it, continuously
//     for Hysteresis. Operator assignments (pinned) are never released.
//   - After any change, a site is left alone for Settle, so a decision's
//     effect is measured before the next one (no flapping).
type Policy struct {
	Interval   time.Duration
	TargetRPS  float64
	MaxLoad    float64
	ReleaseAt  float64
	Hysteresis time.Duration
	Settle     time.Duration
	Alpha      float64 // EWMA weight of the newest sample
	Ahead      float64 // intervals of trend to anticipate
}

func (p *Policy) defaults() {
	def := func(v *float64, d float64) {
		if *v == 0 {
			*v = d
		}
	}
	def(&p.TargetRPS, 100)
	def(&p.MaxLoad, 0.8)
	def(&p.ReleaseAt, 0.5)
	def(&p.Alpha, 0.3)
	def(&p.Ahead, 3)
	if p.Interval == 0 {
		p.Interval = time.Second
	}
	if p.Hysteresis == 0 {
		p.Hysteresis = 60 * time.Second
	}
	if p.Settle == 0 {
		p.Settle = 5 * time.Second
	}
}

// place updates demand and returns the changes it made to st.
func (p *Policy) place(st *Snapshot, now time.Time) []Decision {
	var out []Decision
	names := make([]string, 0, len(st.Sites))
	for n := range st.Sites {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, name := range names {
		s := st.Sites[name]
		if s.Bundle == "" {
			continue
		}
		// Demand per region, from every front-end's report.
		sample := map[string]float64{}
		for _, n := range st.Nodes {
			if n.Report.Role == "frontend" && n.Healthy(now) {
				sample[n.Report.Region] += n.Report.SiteRPS[name]
			}
		}
		var before, total float64
		for r := range mergeKeys(sample, s.Demand) {
			before += s.Demand[r]
			s.Demand[r] = p.Alpha*sample[r] + (1-p.Alpha)*s.Demand[r]
			if s.Demand[r] < 0.01 && sample[r] == 0 {
				delete(s.Demand, r)
				continue
			}
			total += s.Demand[r]
		}
		s.Trend = total - before
		estimate := max(0, total+p.Ahead*s.Trend)

		serving := 0
		overloaded := ""
		for id := range s.Assigned {
			if n := st.Nodes[id]; n != nil && n.Healthy(now) {
				serving++
				if n.Report.Load > p.MaxLoad {
					overloaded = id
				}
			}
		}
		if now.Sub(s.LastChange) < p.Settle {
			continue
		}
		if d := p.placeBackends(st, s, now); d != nil {
			out = append(out, *d)
		}
		perFE := estimate / math.Max(1, float64(serving))
		switch {
		case serving == 0 || perFE > p.TargetRPS || overloaded != "":
			reason := ""
			switch {
			case serving == 0:
				reason = "no healthy front-end serves the site"
			case overloaded != "":
				reason = fmt.Sprintf("front-end %s is overloaded (load %.2f > %.2f)", overloaded, st.Nodes[overloaded].Report.Load, p.MaxLoad)
			default:
				reason = fmt.Sprintf("estimated demand %.0f req/s (EWMA %.0f, trend %+.0f) over %d front-end(s) is %.0f each, above the target %.0f",
					estimate, total, s.Trend, serving, perFE, p.TargetRPS)
			}
			if id := p.candidate(st, s, now); id != "" {
				s.Assigned[id] = &Assignment{Node: id, Since: now, Reason: reason}
				s.LastChange, s.LowSince = now, time.Time{}
				out = append(out, Decision{Time: now, Site: name, Node: id, Action: "assign", Reason: reason, By: "placement"})
			}
		default:
			// Release the newest placement-made assignment once the rest
			// could carry the demand comfortably, for Hysteresis.
			victim := newestUnpinned(s)
			if victim == "" || serving <= 1 {
				s.LowSince = time.Time{}
				continue
			}
			if estimate/float64(serving-1) >= p.ReleaseAt*p.TargetRPS {
				s.LowSince = time.Time{}
				continue
			}
			if s.LowSince.IsZero() {
				s.LowSince = now
				continue
			}
			if now.Sub(s.LowSince) < p.Hysteresis {
				continue
			}
			reason := fmt.Sprintf("demand %.0f req/s fits %d front-end(s) under %.0f%% of the target for %v",
				estimate, serving-1, p.ReleaseAt*100, p.Hysteresis)
			delete(s.Assigned, victim)
			s.LastChange, s.LowSince = now, time.Time{}
			out = append(out, Decision{Time: now, Site: name, Node: victim, Action: "release", Reason: reason, By: "placement"})
		}
	}
	return out
}

// candidate picks the front-end to add: healthy, not serving the site,
// not overloaded, in the hottest region if possible, least loaded.
func (p *Policy) candidate(st *Snapshot, s *Site, now time.Time) string {
	hot, hotDemand := "", -1.0
	for r, d := range s.Demand {
		if d > hotDemand || (d == hotDemand && r < hot) {
			hot, hotDemand = r, d
		}
	}
	best, bestScore := "", math.Inf(1)
	for id, n := range st.Nodes {
		if n.Report.Role != "frontend" || !n.Healthy(now) || s.Assigned[id] != nil || n.Report.Load > p.MaxLoad {
			continue
		}
		score := n.Report.Load + n.Report.RPS/math.Max(1, p.TargetRPS)
		if n.Report.Region != hot {
			score += 10 // another region only when the hot one has nobody left
		}
		if score < bestScore || (score == bestScore && strings.Compare(id, best) < 0) {
			best, bestScore = id, score
		}
	}
	return best
}

func newestUnpinned(s *Site) string {
	id, since := "", time.Time{}
	for k, a := range s.Assigned {
		if !a.Pinned && (id == "" || a.Since.After(since)) {
			id, since = k, a.Since
		}
	}
	return id
}

func mergeKeys(a, b map[string]float64) map[string]struct{} {
	out := map[string]struct{}{}
	for k := range a {
		out[k] = struct{}{}
	}
	for k := range b {
		out[k] = struct{}{}
	}
	return out
}
