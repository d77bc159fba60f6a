package esi

import (
	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/conductor-edge/conductor/caddymodule/internal/promreg"
)

// Metrics, on Caddy's metrics endpoint, labelled with the handler's site.
// Names follow Caddy's: namespace, subsystem, base units.
var (
	pagesTotal = promreg.CounterVec("esi", "pages_total",
		"Responses assembled from an ESI template.",
		"site")
	includesTotal = promreg.CounterVec("esi", "includes_total",
		"esi:include elements resolved, by outcome: src, alt (src failed), miss (both failed: the include came to nothing, or to its try's except).",
		"site", "outcome")
	triesTotal = promreg.CounterVec("esi", "tries_total",
		"esi:try blocks resolved, by the branch used: attempt or except.",
		"site", "branch")
	refusedTotal = promreg.CounterVec("esi", "refused_total",
		"Include sources refused: a host not on the allow-list, or a scheme other than http(s).",
		"site")
	shortcutsTotal = promreg.CounterVec("esi", "cache_shortcuts_total",
		"Includes answered straight from edge_cache's store (a fresh fragment), without a pass through the server.",
		"site")
	timeoutsTotal = promreg.CounterVec("esi", "timeouts_total",
		"Fragment fetches stopped by the per-fragment timeout.",
		"site")
	fragmentSeconds = promreg.HistogramVec("esi", "fragment_duration_seconds",
		"Time to fetch one fragment through the front-end's routes (cache hits included).",
		prometheus.ExponentialBuckets(0.0005, 2, 15), "site")
)

func registerMetrics(ctx caddy.Context) error {
	return promreg.Register(ctx, pagesTotal, includesTotal, triesTotal, refusedTotal, shortcutsTotal, timeoutsTotal, fragmentSeconds)
}

// siteMetrics holds one handler's series, resolved once at provision.
type siteMetrics struct {
	pages     prometheus.Counter
	includes  map[string]prometheus.Counter
	tries     map[string]prometheus.Counter
	refused   prometheus.Counter
	timeouts  prometheus.Counter
	shortcuts prometheus.Counter
	duration  prometheus.Observer
}

func metricsFor(site string) *siteMetrics {
	m := &siteMetrics{
		pages:     pagesTotal.WithLabelValues(site),
		includes:  map[string]prometheus.Counter{},
		tries:     map[string]prometheus.Counter{},
		refused:   refusedTotal.WithLabelValues(site),
		timeouts:  timeoutsTotal.WithLabelValues(site),
		shortcuts: shortcutsTotal.WithLabelValues(site),
		duration:  fragmentSeconds.WithLabelValues(site),
	}
	for _, o := range []string{"src", "alt", "miss"} {
		m.includes[o] = includesTotal.WithLabelValues(site, o)
	}
	for _, b := range []string{"attempt", "except"} {
		m.tries[b] = triesTotal.WithLabelValues(site, b)
	}
	return m
}
