package edgecache

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// cacheControl is a parsed Cache-Control field (RFC 9111 §5.2). Directive
// names are case-insensitive; values may be tokens or quoted strings. The
// parser never fails: like every deployed cache, it keeps the directives it
// understands and ignores the rest, because a malformed field from one origin
// must not turn into an error page. Where a delta-seconds value is invalid,
// the directive is treated as present with an invalid value, which §4.2.1
// says makes the response stale ("a cache … SHOULD consider it stale").
type cacheControl map[string]string

// parseCacheControl parses every Cache-Control field line of h. Fields
// longer than maxCacheControlLen are truncated at that length: a hostile
// origin or client cannot make parsing cost more than that.
func parseCacheControl(h http.Header) cacheControl {
	lines := h.Values("Cache-Control")
	if len(lines) == 0 {
		return nil
	}
	cc := make(cacheControl, 4)
	total := 0
	for _, line := range lines {
		if total+len(line) > maxCacheControlLen {
			line = line[:max(0, maxCacheControlLen-total)]
		}
		total += len(line)
		parseCacheControlLine(cc, line)
		if len(cc) >= maxDirectives {
			break
		}
	}
	return cc
}

const (
	maxCacheControlLen = 4096
	maxDirectives      = 64
)

func parseCacheControlLine(cc cacheControl, s string) {
	for len(s) > 0 && len(cc) < maxDirectives {
		s = strings.TrimLeft(s, " \t,")
		if s == "" {
			return
		}
		// name
		i := 0
		for i < len(s) && s[i] != '=' && s[i] != ',' {
			i++
		}
		name := strings.ToLower(strings.TrimSpace(s[:i]))
		s = s[i:]
		val := ""
		if strings.HasPrefix(s, "=") {
			s = strings.TrimLeft(s[1:], " \t")
			if strings.HasPrefix(s, `"`) {
				// quoted-string, with quoted-pair (RFC 9110 §5.6.4)
				var b strings.Builder
				j := 1
				for ; j < len(s) && s[j] != '"'; j++ {
					if s[j] == '\\' && j+1 < len(s) {
						j++
					}
					b.WriteByte(s[j])
				}
				val = b.String()
				if j < len(s) {
					j++ // closing quote
				}
				s = s[j:]
				// skip garbage up to the next comma
				if k := strings.IndexByte(s, ','); k >= 0 {
					s = s[k:]
				} else {
					s = ""
				}
			} else {
				k := strings.IndexByte(s, ',')
				if k < 0 {
					k = len(s)
				}
				val = strings.TrimSpace(s[:k])
				s = s[k:]
			}
		}
		if name == "" || !isToken(name) {
			continue
		}
		if _, dup := cc[name]; dup {
			// §4.2.1: with duplicated directives a cache may use the first;
			// for delta-seconds we keep the lowest, the safe reading.
			if a, okA := deltaSeconds(cc[name]); okA {
				if b, okB := deltaSeconds(val); okB && b < a {
					cc[name] = val
				}
			}
			continue
		}
		cc[name] = val
	}
}

func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

// has reports whether the directive is present, with or without a value.
func (cc cacheControl) has(name string) bool {
	_, ok := cc[name]
	return ok
}

// duration returns a delta-seconds directive. ok is false when the
// directive is absent; valid is false when it is present but not a
// non-negative integer.
func (cc cacheControl) duration(name string) (d time.Duration, ok, valid bool) {
	v, ok := cc[name]
	if !ok {
		return 0, false, false
	}
	secs, valid := deltaSeconds(v)
	return time.Duration(secs) * time.Second, true, valid
}

// deltaSeconds parses RFC 9111 §1.2.2 delta-seconds. Values too large to
// represent are clamped to 2^31 seconds, as the RFC requires.
func deltaSeconds(v string) (int64, bool) {
	if v == "" {
		return 0, false
	}
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return 0, false
		}
	}
	const limit = 1 << 31
	if len(v) > 10 {
		return limit, true
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n > limit {
		return limit, true
	}
	return n, true
}
