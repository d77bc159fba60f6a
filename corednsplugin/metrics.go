package corednsplugin

import (
	"github.com/coredns/coredns/plugin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var (
	answers = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace,
		Subsystem: "conductor",
		Name:      "answers_total",
		Help:      "Answers given, per site and chosen front-end (\"origin\" for the fallback).",
	}, []string{"server", "site", "frontend"})
	frontendHealthy = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: plugin.Namespace,
		Subsystem: "conductor",
		Name:      "frontend_healthy",
		Help:      "Whether a front-end passes its health checks (1) or not (0).",
	}, []string{"site", "frontend"})
	decisionDuration = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: plugin.Namespace,
		Subsystem: "conductor",
		Name:      "decision_duration_seconds",
		Help:      "Time to choose the answer for a query.",
		Buckets:   []float64{5e-6, 10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 1e-3, 10e-3},
	}, []string{"server"})
)
