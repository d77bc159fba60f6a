package esi

import (
	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/conductor-edge/conductor/caddymodule/internal/promreg"
)

// Metrics, on Caddy's metrics endpoint, labelled with the handler's site.
// Names follow Caddy's: namespace, subsystem, base units.
var (
	pagesTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "conductor", Subsystem: "esi", Name: "pages_total",
		Help: "Responses assembled from an ESI template.",
	}, []string{"site"})
	includesTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "conductor", Subsystem: "esi", Name: "includes_total",
		Help: "esi:include elements resolved, by outcome: src, alt (src failed), miss (both failed: the include came to nothing, or to its try's except).",
	}, []string{"site", "outcome"})
	triesTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "conductor", Subsystem: "esi", Name: "tries_total",
		Help: "esi:try blocks resolved, by the branch used: attempt or except.",
	}, []string{"site", "branch"})
	refusedTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "conductor", Subsystem: "esi", Name: "refused_total",
		Help: "Include sources refused: a host not on the allow-list, or a scheme other than http(s).",
	}, []string{"site"})
	shortcutsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "conductor", Subsystem: "esi", Name: "cache_shortcuts_total",
		Help: "Includes answered straight from edge_cache's store (a fresh fragment), without a pass through the server.",
	}, []string{"site"})
	timeoutsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "conductor", Subsystem: "esi", Name: "timeouts_total",
		Help: "Fragment fetches stopped by the per-fragment timeout.",
	}, []string{"site"})
	fragmentSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "conductor", Subsystem: "esi", Name: "fragment_duration_seconds",
		Help:    "Time to fetch one fragment through the front-end's routes (cache hits included).",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 15),
	}, []string{"site"})
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
