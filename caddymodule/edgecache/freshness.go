package edgecache

import (
	"net/http"
	"strconv"
	"time"
)

// heuristicallyCacheable are the status codes RFC 9110 §15.1 marks
// "heuristically cacheable": they may be stored without explicit freshness.
var heuristicallyCacheable = map[int]bool{
	200: true, 203: true, 204: true, 300: true, 301: true, 308: true,
	404: true, 405: true, 410: true, 414: true, 501: true,
}

// understoodStatus are the final status codes this cache knows how to
// store (§3: "the response status code is final and … understood"). 206
// is left out: the cache fetches whole representations and serves ranges
// from them.
func understoodStatus(code int) bool {
	switch {
	case heuristicallyCacheable[code]:
		return true
	case code == 302, code == 307, code == 400, code == 403, code == 429, code >= 500 && code <= 504:
		return true
	}
	return false
}

// storable decides whether a response may be stored, by RFC 9111 §3 for a
// shared cache, with two operator rules on top:
//   - a response that sets a cookie is not stored (nginx's and Varnish's
//     default), because a cookie is someone's session;
//   - a request carrying one of the operator's bypass cookies is never
//     answered from or stored in the cache (checked by the handler).
//
// It returns the reason when the answer is no, for Cache-Status's detail.
func storable(req *http.Request, reqCC cacheControl, status int, resh http.Header, respCC cacheControl) (bool, string) {
	if req.Method != http.MethodGet {
		return false, "method"
	}
	if !understoodStatus(status) {
		return false, "status"
	}
	if reqCC.has("no-store") || respCC.has("no-store") {
		return false, "no-store"
	}
	if respCC.has("private") {
		return false, "private"
	}
	if resh.Get("Vary") == "*" {
		return false, "vary-star"
	}
	if len(resh.Values("Set-Cookie")) > 0 {
		return false, "set-cookie"
	}
	// §3.5: a shared cache stores a response to an authenticated request
	// only if the origin explicitly allows it.
	if req.Header.Get("Authorization") != "" &&
		!respCC.has("public") && !respCC.has("s-maxage") && !respCC.has("must-revalidate") {
		return false, "authorization"
	}
	// §3: it needs explicit freshness, a heuristically cacheable status,
	// or public (no-cache responses are stored and revalidated on use).
	if respCC.has("s-maxage") || respCC.has("max-age") || resh.Get("Expires") != "" ||
		respCC.has("public") || respCC.has("no-cache") || heuristicallyCacheable[status] {
		return true, ""
	}
	return false, "no-freshness"
}

// freshnessLifetime computes §4.2.1's freshness lifetime for a shared
// cache: s-maxage, then max-age, then Expires − Date, then a heuristic of
// 10 % of the time since Last-Modified (§4.2.2), capped at heuristicMax.
// An invalid value makes the response stale (lifetime 0).
func freshnessLifetime(status int, h http.Header, cc cacheControl, heuristicMax time.Duration) time.Duration {
	if d, ok, valid := cc.duration("s-maxage"); ok {
		if !valid {
			return 0
		}
		return d
	}
	if d, ok, valid := cc.duration("max-age"); ok {
		if !valid {
			return 0
		}
		return d
	}
	if exp := h.Get("Expires"); exp != "" {
		t, err := http.ParseTime(exp)
		if err != nil {
			return 0 // §5.3: invalid Expires means "already expired"
		}
		date := responseDate(h, time.Now())
		if t.After(date) {
			return t.Sub(date)
		}
		return 0
	}
	if !heuristicallyCacheable[status] && !cc.has("public") {
		return 0
	}
	if lm, err := http.ParseTime(h.Get("Last-Modified")); err == nil {
		date := responseDate(h, time.Now())
		if date.After(lm) {
			d := date.Sub(lm) / 10
			if heuristicMax > 0 && d > heuristicMax {
				d = heuristicMax
			}
			return d
		}
	}
	return 0
}

func responseDate(h http.Header, fallback time.Time) time.Time {
	if t, err := http.ParseTime(h.Get("Date")); err == nil {
		return t
	}
	return fallback
}

// initialAge is §4.2.3's corrected_initial_age: the response's age when
// it arrived, from its Age and Date fields and the time the request took.
func initialAge(h http.Header, requestTime, responseTime time.Time) time.Duration {
	apparent := max(0, responseTime.Sub(responseDate(h, responseTime)))
	var ageValue time.Duration
	if secs, ok := deltaSeconds(h.Get("Age")); ok {
		ageValue = time.Duration(secs) * time.Second
	}
	corrected := ageValue + responseTime.Sub(requestTime)
	return max(apparent, corrected)
}

// staleWindow returns how long past its freshness a response may be
// served stale under the named RFC 5861 directive (stale-while-revalidate
// or stale-if-error), taking the request's own directive into account for
// stale-if-error (§4 of RFC 5861 allows it in requests).
func staleWindow(name string, respCC, reqCC cacheControl) time.Duration {
	var d time.Duration
	if v, ok, valid := respCC.duration(name); ok && valid {
		d = v
	}
	if name == "stale-if-error" {
		if v, ok, valid := reqCC.duration(name); ok && valid {
			d = v
		}
	}
	return d
}

func ageHeader(age time.Duration) string {
	return strconv.FormatInt(int64(age/time.Second), 10)
}
