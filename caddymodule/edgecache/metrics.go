package edgecache

import (
	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/conductor-edge/conductor/caddymodule/internal/promreg"
)

// Metrics, on Caddy's metrics endpoint. `site` is the handler's site name
// (its Caddyfile site address, or `site` in its config); `cache` is the
// store's name. Names follow Caddy's: namespace, subsystem, base units.
var (
	requestsTotal = promreg.CounterVec("edge_cache", "requests_total",
		"Requests the edge cache answered, by outcome: hit, miss, stale (served stale), revalidated, collapsed (waited for another request's fetch), bypass.",
		"site", "outcome")
	servedBytes = promreg.CounterVec("edge_cache", "served_bytes_total",
		"Body bytes sent to clients, by source: cache or origin.",
		"site", "source")
	originFetches = promreg.CounterVec("edge_cache", "origin_fetches_total",
		"Requests the edge cache sent to the origin, by kind: miss, revalidate, refresh (ahead of expiry), warm.",
		"site", "kind")
	evictionsTotal = promreg.CounterVec("edge_cache", "evictions_total",
		"Entries evicted from memory to make room.",
		"cache", "policy")
	storedBytes = prometheus.NewDesc("conductor_edge_cache_stored_bytes",
		"Bytes held by the cache, by tier: memory or disk.", []string{"cache", "tier"}, nil)
)

// storeCollector reports each live store's size when scraped.
type storeCollector struct{}

func (storeCollector) Describe(ch chan<- *prometheus.Desc) { ch <- storedBytes }

func (storeCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range liveStores("") {
		ch <- prometheus.MustNewConstMetric(storedBytes, prometheus.GaugeValue, float64(s.mem.usedBytes()), s.name, "memory")
		if s.disk != nil {
			ch <- prometheus.MustNewConstMetric(storedBytes, prometheus.GaugeValue, float64(s.disk.usedBytes()), s.name, "disk")
		}
	}
}

// registerMetrics registers the collectors once per registry; Caddy keeps
// one registry across reloads, so a second registration finds the first.
func registerMetrics(ctx caddy.Context) error {
	return promreg.Register(ctx, requestsTotal, servedBytes, originFetches, evictionsTotal, storeCollector{})
}

// siteMetrics holds one handler's counters, resolved once: a label lookup
// per request would cost a hash and a lock on the hit path.
type siteMetrics struct {
	requests    map[string]prometheus.Counter
	fetches     map[string]prometheus.Counter
	bytesCache  prometheus.Counter
	bytesOrigin prometheus.Counter
}

func newSiteMetrics(site string) *siteMetrics {
	m := &siteMetrics{
		requests:    map[string]prometheus.Counter{},
		fetches:     map[string]prometheus.Counter{},
		bytesCache:  servedBytes.WithLabelValues(site, "cache"),
		bytesOrigin: servedBytes.WithLabelValues(site, "origin"),
	}
	for _, o := range []string{"hit", "miss", "stale", "revalidated", "collapsed", "bypass"} {
		m.requests[o] = requestsTotal.WithLabelValues(site, o)
	}
	for _, k := range []string{"miss", kindRevalidate, kindRefresh, kindWarm} {
		m.fetches[k] = originFetches.WithLabelValues(site, k)
	}
	return m
}
