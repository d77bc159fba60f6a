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
	managerViewAge = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: plugin.Namespace,
		Subsystem: "conductor",
		Name:      "manager_view_age_seconds",
		Help:      "Age of the last view received from the shifting manager; past manager_max_age it is not used.",
	}, []string{"zones"})
	managerViewTimestamp = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: plugin.Namespace,
		Subsystem: "conductor",
		Name:      "manager_view_timestamp_seconds",
		Help:      "Unix time the last view from the shifting manager arrived.",
	}, []string{"zones"})
	decisionDuration = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: plugin.Namespace,
		Subsystem: "conductor",
		Name:      "decision_duration_seconds",
		Help:      "Time to choose the answer for a query.",
		Buckets:   []float64{5e-6, 10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 1e-3, 10e-3},
	}, []string{"server"})
)

// serverMetrics caches the metric children of one server block, so that the
// hot path does no label lookup (hashing the label values on every query
// cost more than the decision itself).
type serverMetrics struct {
	server   string
	answers  map[string]map[string]prometheus.Counter // site → front-end
	decision prometheus.Observer
}

func (s *serverMetrics) answer(site, fe string) prometheus.Counter {
	if c, ok := s.answers[site][fe]; ok {
		return c
	}
	return answers.WithLabelValues(s.server, site, fe)
}

// metricsFor returns the cached children for server, rebuilding them if
// the handler serves under another server name.
func (h *Handler) metricsFor(server string) *serverMetrics {
	if m := h.mc.Load(); m != nil && m.server == server {
		return m
	}
	m := &serverMetrics{server: server, answers: map[string]map[string]prometheus.Counter{}, decision: decisionDuration.WithLabelValues(server)}
	for _, z := range h.cfg.zones {
		m.answers[z] = map[string]prometheus.Counter{"origin": answers.WithLabelValues(server, z, "origin")}
		for _, f := range h.cfg.frontends {
			m.answers[z][f.name] = answers.WithLabelValues(server, z, f.name)
		}
	}
	h.mc.Store(m)
	return m
}
