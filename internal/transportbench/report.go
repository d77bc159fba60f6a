package transportbench

import (
	"fmt"
	"sort"
	"strings"

	"github.com/conductor-edge/conductor/internal/benchinfo"
)

// Table renders the report as text, for the terminal.
func (rep Report) Table(profiles []ProfileSpec) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-12s %-12s %10s %6s %10s %10s %9s %9s %6s %6s %8s %8s %6s\n", "profile", "peer", "goodput", "link", "urgent50", "urgent99", "warm", "cold", "share", "compet", "retrans", "cpu s", "errors")
	rep.each(profiles, func(p ProfileSpec, k string, r *Result) {
		fmt.Fprintf(&b, "%-12s %-12s %7.1f Mb %5.1f%% %7.0f ms %7.0f ms %6.1f ms %6.1f ms %6.2f %6.2f %8s %8.1f %6d\n", p.Name, k, r.GoodputMbps, 100*r.LinkUtilization, r.P50UrgentMs, r.P99UrgentMs, r.WarmRequestMs, r.ColdRequestMs, deref(r.Share), deref(r.CompetitorRatio), optional(r.RetransmitRatio, "%.3f"), r.CPUSeconds, len(r.Errors))
	})
	return b.String()
}

// Markdown renders the report as the Markdown table of bench/RESULTS.md.
func (rep Report) Markdown(profiles []ProfileSpec) string {
	var b strings.Builder
	b.WriteString("| profile | peer | goodput Mbit/s | link busy | urgent p50 ms | urgent p99 ms | warm ms | cold ms | share | competitor ratio | retrans | cpu s | errors |\n")
	b.WriteString("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	rep.each(profiles, func(p ProfileSpec, k string, r *Result) {
		fmt.Fprintf(&b, "| %s | %s | %.1f | %s | %.0f | %.0f | %.1f | %.1f | %s | %s | %s | %.1f | %d |\n", p.Name, k, r.GoodputMbps, optionalPct(r.LinkUtilization), r.P50UrgentMs, r.P99UrgentMs, r.WarmRequestMs, r.ColdRequestMs, optional(r.Share, "%.2f"), optional(r.CompetitorRatio, "%.2f"), optional(r.RetransmitRatio, "%.3f"), r.CPUSeconds, len(r.Errors))
	})
	return b.String()
}

// each visits the results in profile order, peers in the order of Peers().
func (rep Report) each(profiles []ProfileSpec, fn func(ProfileSpec, string, *Result)) {
	order := map[string]int{}
	for i, p := range Peers() {
		order[p.Name()] = i
	}
	for _, p := range profiles {
		keys := make([]string, 0, len(rep[p.Name]))
		for k := range rep[p.Name] {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool { return order[keys[i]] < order[keys[j]] })
		for _, k := range keys {
			fn(p, k, rep[p.Name][k])
		}
	}
}

func deref(p *float64) float64 {
	if p == nil {
		return 0
	}
	return *p
}

// optional formats a value a run may not have measured: "—" when null.
func optional(p *float64, format string) string {
	if p == nil {
		return "—"
	}
	return fmt.Sprintf(format, *p)
}

// optionalPct formats a share as a percentage, "—" in runs made before it
// was measured.
func optionalPct(v float64) string {
	if v == 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f %%", 100*v)
}

// WriteJSON writes the report to path.
func (rep Report) WriteJSON(path string) error {
	return benchinfo.WriteJSON(path, rep)
}
