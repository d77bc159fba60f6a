package adapt

import (
	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/conductor-edge/conductor/caddymodule/internal/promreg"
)

// Metrics, on Caddy's metrics endpoint, labelled with the handler's site.
var (
	classesTotal = promreg.CounterVec("adapt", "requests_total",
		"Requests classified, by class (full, lite, text) and the signal that decided it: none, save-data, hint, measured, inherited.",
		"site", "class", "reason")
	imagesTotal = promreg.CounterVec("adapt", "images_total",
		"Images seen by adapt_images, by outcome: converted, skipped_larger (the conversion saved nothing), skipped_limit (too large, too many pixels, or the converters busy), error (undecodable), passed (not an image it converts).",
		"site", "outcome")
	imageBytes = promreg.CounterVec("adapt", "image_bytes_total",
		"Bytes of converted images, before (origin) and after (served).",
		"site", "stage")
	convertSeconds = promreg.HistogramVec("adapt", "convert_duration_seconds",
		"Time to decode, resize and encode one image.",
		prometheus.ExponentialBuckets(0.001, 2, 14), "site")
)

func registerMetrics(ctx caddy.Context) error {
	return promreg.Register(ctx, classesTotal, imagesTotal, imageBytes, convertSeconds)
}

type classMetrics struct {
	classes map[string]prometheus.Counter // "class/reason"
}

func classMetricsFor(site string) *classMetrics {
	m := &classMetrics{classes: map[string]prometheus.Counter{}}
	for _, c := range []Class{Full, Lite, Text} {
		for _, r := range []string{"none", "save-data", "hint", "measured", "inherited"} {
			m.classes[string(c)+"/"+r] = classesTotal.WithLabelValues(site, string(c), r)
		}
	}
	return m
}

type imageMetrics struct {
	outcomes      map[string]prometheus.Counter
	before, after prometheus.Counter
	duration      prometheus.Observer
}

func imageMetricsFor(site string) *imageMetrics {
	m := &imageMetrics{
		outcomes: map[string]prometheus.Counter{},
		before:   imageBytes.WithLabelValues(site, "origin"),
		after:    imageBytes.WithLabelValues(site, "served"),
		duration: convertSeconds.WithLabelValues(site),
	}
	for _, o := range []string{"converted", "skipped_larger", "skipped_limit", "error", "passed"} {
		m.outcomes[o] = imagesTotal.WithLabelValues(site, o)
	}
	return m
}
