package bundle

import (
	"io"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/conductor-edge/conductor/shifting"
)

// pattern is a manifest's path pattern: "/exact", "/prefix/*" or "*".
type pattern struct {
	exact, prefix string
	all           bool
}

func compilePattern(p string) pattern {
	switch {
	case p == "*":
		return pattern{all: true}
	case strings.HasSuffix(p, "*"):
		return pattern{prefix: strings.TrimSuffix(p, "*")}
	}
	return pattern{exact: p}
}

// match reports whether path matches, and what the "*" stood for.
func (p pattern) match(path string) (rest string, ok bool) {
	switch {
	case p.all:
		return strings.TrimPrefix(path, "/"), true
	case p.prefix != "":
		if strings.HasPrefix(path, p.prefix) {
			return path[len(p.prefix):], true
		}
		return "", false
	}
	return "", path == p.exact
}

// expand puts what "*" matched into a target that ends in "*".
func expand(to, rest string) string {
	if strings.HasSuffix(to, "*") {
		return strings.TrimSuffix(to, "*") + rest
	}
	return to
}

type redirectRule struct {
	from   pattern
	to     string
	status int
}

type rewriteRule struct {
	from pattern
	to   string
}

type headerRule struct {
	path pattern
	set  map[string]string
	del  []string
}

type cacheRule struct {
	path  pattern
	value string
}

// rules are a manifest's rules, compiled.
type rules struct {
	redirects []redirectRule
	rewrites  []rewriteRule
	headers   []headerRule
	cache     []cacheRule
}

func compileRules(m *shifting.Manifest) rules {
	var rs rules
	for _, r := range m.Redirects {
		status := r.Status
		if status == 0 {
			status = http.StatusFound
		}
		rs.redirects = append(rs.redirects, redirectRule{compilePattern(r.From), r.To, status})
	}
	for _, r := range m.Rewrites {
		rs.rewrites = append(rs.rewrites, rewriteRule{compilePattern(r.From), r.To})
	}
	for _, h := range m.Headers {
		set := map[string]string{}
		for k, v := range h.Set {
			set[http.CanonicalHeaderKey(k)] = v
		}
		rs.headers = append(rs.headers, headerRule{compilePattern(h.Path), set, h.Delete})
	}
	for _, c := range m.Cache {
		rs.cache = append(rs.cache, cacheRule{compilePattern(c.Path), c.CacheControl})
	}
	return rs
}

// redirect is the redirect for path, if a rule has one.
func (rs *rules) redirect(path string) (string, int, bool) {
	for _, r := range rs.redirects {
		if rest, ok := r.from.match(path); ok {
			return expand(r.to, rest), r.status, true
		}
	}
	return "", 0, false
}

// rewrite is path after the first rewrite that matches it.
func (rs *rules) rewrite(path string) string {
	for _, r := range rs.rewrites {
		if rest, ok := r.from.match(path); ok {
			return expand(r.to, rest)
		}
	}
	return path
}

// cacheControl is the Cache-Control of a static file at path.
func (rs *rules) cacheControl(path string) string {
	for _, c := range rs.cache {
		if _, ok := c.path.match(path); ok {
			return c.value
		}
	}
	return ""
}

// headersFor lists the header rules that apply to path.
func (rs *rules) headersFor(path string) []*headerRule {
	var out []*headerRule
	for i := range rs.headers {
		if _, ok := rs.headers[i].path.match(path); ok {
			out = append(out, &rs.headers[i])
		}
	}
	return out
}

// headerWriter applies header rules to the response as its header goes
// out, whoever writes it: the bundle, a function, or the origin through
// the handlers after this one.
type headerWriter struct {
	*caddyhttp.ResponseWriterWrapper
	rules []*headerRule
	done  bool
}

func (hw *headerWriter) apply() {
	if hw.done {
		return
	}
	hw.done = true
	h := hw.Header()
	for _, r := range hw.rules {
		for _, k := range r.del {
			h.Del(k)
		}
		for k, v := range r.set {
			h.Set(k, v)
		}
	}
}

func (hw *headerWriter) WriteHeader(code int) {
	if code >= 200 {
		hw.apply()
	}
	hw.ResponseWriterWrapper.WriteHeader(code)
}

func (hw *headerWriter) Write(b []byte) (int, error) {
	hw.apply()
	return hw.ResponseWriterWrapper.Write(b)
}

func (hw *headerWriter) ReadFrom(r io.Reader) (int64, error) {
	hw.apply()
	return hw.ResponseWriterWrapper.ReadFrom(r)
}
