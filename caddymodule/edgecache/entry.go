package edgecache

import (
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// entry is one stored response. Everything but the counters is immutable
// once stored: a revalidation stores a new entry (RFC 9111 §4.3.4 updates
// the stored header fields), so a reader never sees a half-updated one.
type entry struct {
	key     string // primary key plus the Vary secondary key
	primary string // host + request-target: what "purge by URL" names

	status int
	header http.Header // stored fields, hop-by-hop and Age removed
	body   []byte

	requestTime  time.Time // when the fetch that produced it started
	responseTime time.Time // when its header arrived
	initialAge   time.Duration
	lifetime     time.Duration
	cc           cacheControl

	varyNames []string    // canonical names of the fields it varies on
	tags      []string    // Surrogate-Key and Cache-Tag values
	reqHeader http.Header // request fields a background refresh replays

	softPurged atomic.Bool // marked stale by a soft purge
	hits       atomic.Int64
}

// age is §4.2.3's current_age.
func (e *entry) age(now time.Time) time.Duration {
	return e.initialAge + now.Sub(e.responseTime)
}

// ttl is the remaining freshness; negative once stale.
func (e *entry) ttl(now time.Time) time.Duration {
	if e.softPurged.Load() {
		return min(0, e.lifetime-e.age(now))
	}
	return e.lifetime - e.age(now)
}

// size is what the entry costs in memory, for the byte bound.
func (e *entry) size() int64 {
	n := int64(len(e.body) + len(e.key) + len(e.primary) + 256)
	for k, vs := range e.header {
		n += int64(len(k))
		for _, v := range vs {
			n += int64(len(v) + 16)
		}
	}
	for k, vs := range e.reqHeader {
		n += int64(len(k))
		for _, v := range vs {
			n += int64(len(v) + 16)
		}
	}
	return n
}

// hopByHop are the fields a cache must not store (RFC 9111 §3.1, RFC 9110
// §7.6.1), plus Age, which the cache recomputes on every answer.
var hopByHop = []string{
	"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
	"Age", "Cache-Status",
}

// isInternal reports whether a field is Conductor's own signalling between
// origin, back-end and front-end (Conductor-Load-Index, Conductor-Load, a
// bare Load-Index): it describes the origin at the moment of one response,
// and a stored copy would replay a stale load figure to every client and to
// every load_gate behind a shared cache.
func isInternal(name string) bool {
	return strings.HasPrefix(name, "Conductor-") || name == "Load-Index"
}

func storedHeader(h http.Header) http.Header {
	out := h.Clone()
	for _, f := range h.Values("Connection") {
		for _, name := range strings.Split(f, ",") {
			out.Del(strings.TrimSpace(name))
		}
	}
	for _, k := range hopByHop {
		out.Del(k)
	}
	for k := range out {
		if isInternal(k) {
			delete(out, k)
		}
	}
	return out
}

// tagsOf returns the surrogate keys of a response: Surrogate-Key is
// space-separated (Fastly, Varnish xkey), Cache-Tag comma-separated
// (Cloudflare). At most maxTags are kept, so a hostile origin cannot
// grow the tag index without bound.
func tagsOf(h http.Header) []string {
	var tags []string
	for _, v := range h.Values("Surrogate-Key") {
		tags = append(tags, strings.Fields(v)...)
	}
	for _, v := range h.Values("Cache-Tag") {
		for _, t := range strings.Split(v, ",") {
			if t = strings.TrimSpace(t); t != "" {
				tags = append(tags, t)
			}
		}
	}
	slices.Sort(tags)
	tags = slices.Compact(tags)
	if len(tags) > maxTags {
		tags = tags[:maxTags]
	}
	return tags
}

const maxTags = 64

// replayHeader keeps the request fields a background refresh sends to the
// origin: only those the stored response varies on, which the refresh must
// send the same to fetch the same variant (the key itself is the URL).
// Nothing else of the client who happened to trigger it goes along, as
// Varnish and Fastly do: not its cookies or credentials, and not its
// X-Forwarded-* (the front-end trusts itself as a proxy, so a replayed
// X-Forwarded-For would reach the origin as the truth, and the refreshed
// entry would be what one client's forged headers made of it).
func replayHeader(req http.Header, varyNames []string) http.Header {
	out := http.Header{}
	for _, k := range varyNames {
		if vs, ok := req[k]; ok {
			out[k] = slices.Clone(vs)
		}
	}
	return out
}
