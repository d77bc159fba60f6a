package edgefn

import (
	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/conductor-edge/conductor/caddymodule/internal/promreg"
)

// Metrics, on Caddy's metrics endpoint, labelled with the function's name.
var (
	invocationsTotal = promreg.CounterVec("edge_function", "invocations_total",
		"Calls, by outcome: ok, trap, timeout, limit (a size limit), busy (no instance in time), bad_response.",
		"function", "outcome")
	durationSeconds = promreg.HistogramVec("edge_function", "duration_seconds",
		"Time from the request to the function's answer, waiting for an instance included.",
		prometheus.ExponentialBuckets(0.00005, 2, 18), "function")
	trapsTotal = promreg.CounterVec("edge_function", "traps_total",
		"Calls that trapped (a panic, a memory limit): the instance was discarded.",
		"function")
	timeoutsTotal = promreg.CounterVec("edge_function", "timeouts_total",
		"Calls stopped at their deadline: the instance was discarded.",
		"function")
	instancesLive = promreg.GaugeVec("edge_function", "instances",
		"Instances alive (the pool's size).",
		"function")
	compiledGauge = promreg.GaugeVec("edge_function", "compiled",
		"1 once the function runs as compiled code; 0 while wazero's interpreter serves it (the first seconds after a cold install).",
		"function")
	fetchesTotal = promreg.CounterVec("edge_function", "fetches_total",
		"fetch calls from functions, by outcome: ok, refused (not the request's host or fetch_allow), failed.",
		"function", "outcome")
)

// RegisterMetrics registers the functions' metrics in ctx's registry.
func RegisterMetrics(ctx caddy.Context) error {
	return promreg.Register(ctx, invocationsTotal, durationSeconds, trapsTotal, timeoutsTotal, instancesLive, fetchesTotal, compiledGauge)
}

type fnMetrics struct {
	invocations     map[string]prometheus.Counter
	fetches         map[string]prometheus.Counter
	duration        prometheus.Observer
	traps, timeouts prometheus.Counter
	live, compiled  prometheus.Gauge
}

func metricsFor(fn string) *fnMetrics {
	m := &fnMetrics{
		invocations: map[string]prometheus.Counter{},
		fetches:     map[string]prometheus.Counter{},
		duration:    durationSeconds.WithLabelValues(fn),
		traps:       trapsTotal.WithLabelValues(fn),
		timeouts:    timeoutsTotal.WithLabelValues(fn),
		live:        instancesLive.WithLabelValues(fn),
		compiled:    compiledGauge.WithLabelValues(fn),
	}
	for _, o := range []string{"ok", "trap", "timeout", "limit", "busy", "bad_response"} {
		m.invocations[o] = invocationsTotal.WithLabelValues(fn, o)
	}
	for _, o := range []string{"ok", "refused", "failed"} {
		m.fetches[o] = fetchesTotal.WithLabelValues(fn, o)
	}
	return m
}
