package loadindex

import "github.com/prometheus/client_golang/prometheus"

var gateShed = prometheus.NewCounterVec(prometheus.CounterOpts{
	Namespace: "conductor", Subsystem: "load_gate", Name: "shed_total",
	Help: "Requests answered with the wait page because the origin's load index was high.",
}, []string{"name"})
