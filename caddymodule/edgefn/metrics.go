package edgefn

import (
	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/conductor-edge/conductor/caddymodule/internal/promreg"
)

// Metrics, on Caddy's metrics endpoint, labelled with the function's name.
var (
	invocationsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "conductor", Subsystem: "edge_function", Name: "invocations_total",
		Help: "Calls, by outcome: ok, trap, timeout, limit (a size limit), busy (no instance in time), bad_response.",
	}, []string{"function", "outcome"})
	durationSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "conductor", Subsystem: "edge_function", Name: "duration_seconds",
		Help:    "Time from the request to the function's answer, waiting for an instance included.",
		Buckets: prometheus.ExponentialBuckets(0.00005, 2, 18),
	}, []string{"function"})
	trapsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "conductor", Subsystem: "edge_function", Name: "traps_total",
		Help: "Calls that trapped (a panic, a memory limit): the instance was discarded.",
	}, []string{"function"})
	timeoutsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "conductor", Subsystem: "edge_function", Name: "timeouts_total",
		Help: "Calls stopped at their deadline: the instance was discarded.",
	}, []string{"function"})
	instancesLive = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "conductor", Subsystem: "edge_function", Name: "instances",
		Help: "Instances alive (the pool's size).",
	}, []string{"function"})
	fetchesTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "conductor", Subsystem: "edge_function", Name: "fetches_total",
		Help: "fetch calls from functions, by outcome: ok, refused (not the request's host or fetch_allow), failed.",
	}, []string{"function", "outcome"})
)

func registerMetrics(ctx caddy.Context) error {
	return promreg.Register(ctx, invocationsTotal, durationSeconds, trapsTotal, timeoutsTotal, instancesLive, fetchesTotal)
}

type fnMetrics struct {
	invocations     map[string]prometheus.Counter
	fetches         map[string]prometheus.Counter
	duration        prometheus.Observer
	traps, timeouts prometheus.Counter
	live            prometheus.Gauge
}

func metricsFor(fn string) *fnMetrics {
	m := &fnMetrics{
		invocations: map[string]prometheus.Counter{},
		fetches:     map[string]prometheus.Counter{},
		duration:    durationSeconds.WithLabelValues(fn),
		traps:       trapsTotal.WithLabelValues(fn),
		timeouts:    timeoutsTotal.WithLabelValues(fn),
		live:        instancesLive.WithLabelValues(fn),
	}
	for _, o := range []string{"ok", "trap", "timeout", "limit", "busy", "bad_response"} {
		m.invocations[o] = invocationsTotal.WithLabelValues(fn, o)
	}
	for _, o := range []string{"ok", "refused", "failed"} {
		m.fetches[o] = fetchesTotal.WithLabelValues(fn, o)
	}
	return m
}
