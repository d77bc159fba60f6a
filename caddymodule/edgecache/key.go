package edgecache

import (
	"net"
	"net/http"
	"slices"
	"strings"
)

// primaryKey is the cache key of RFC 9111 §2: the target URI, without the
// scheme (as Varnish's default hash: a site's http and https answers are
// the same resource), with the host lowercased and a default port dropped.
func primaryKey(r *http.Request) string {
	host := strings.ToLower(r.Host)
	if h, p, err := net.SplitHostPort(host); err == nil && (p == "80" || p == "443") {
		host = h
	}
	return host + r.URL.RequestURI()
}

// varyNamesOf returns the canonical, sorted, deduplicated field names a
// response's Vary lists.
func varyNamesOf(h http.Header) []string {
	var names []string
	for _, v := range h.Values("Vary") {
		for _, n := range strings.Split(v, ",") {
			if n = strings.TrimSpace(n); n != "" {
				names = append(names, http.CanonicalHeaderKey(n))
			}
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// secondaryKey is §4.1's selecting-header match, made a string: the
// request's values of each Vary field, normalized by combining field lines
// and collapsing whitespace (the normalization §4.1 allows). Accept-Encoding
// is also lowercased and sorted, so "gzip, br" and "br,gzip" share a variant.
func secondaryKey(r *http.Request, names []string) string {
	if len(names) == 0 {
		return ""
	}
	var b strings.Builder
	for _, n := range names {
		b.WriteByte(0)
		b.WriteString(n)
		b.WriteByte('=')
		v := strings.Join(r.Header.Values(n), ",")
		if n == "Accept-Encoding" {
			parts := strings.Split(strings.ToLower(v), ",")
			for i := range parts {
				parts[i] = strings.TrimSpace(parts[i])
			}
			slices.Sort(parts)
			v = strings.Join(slices.Compact(parts), ",")
		} else {
			v = strings.Join(strings.Fields(v), " ")
		}
		b.WriteString(v)
	}
	return b.String()
}
