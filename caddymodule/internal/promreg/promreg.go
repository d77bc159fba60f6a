// Package promreg registers the edge handlers' collectors in the metrics
// registry of the config being loaded (Caddy makes one per config load);
// a collector already there is fine.
package promreg

import (
	"errors"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"
)

// Register adds cs to ctx's registry.
func Register(ctx caddy.Context, cs ...prometheus.Collector) error {
	reg := ctx.GetMetricsRegistry()
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return err
			}
		}
	}
	return nil
}

// CounterVec is a counter vector named conductor_<subsystem>_<name>, as
// Caddy names its own (namespace, subsystem, base unit).
func CounterVec(subsystem, name, help string, labels ...string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "conductor", Subsystem: subsystem, Name: name, Help: help}, labels)
}

// GaugeVec is CounterVec for gauges.
func GaugeVec(subsystem, name, help string, labels ...string) *prometheus.GaugeVec {
	return prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "conductor", Subsystem: subsystem, Name: name, Help: help}, labels)
}

// HistogramVec is CounterVec for histograms.
func HistogramVec(subsystem, name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	return prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "conductor", Subsystem: subsystem, Name: name, Help: help, Buckets: buckets}, labels)
}
