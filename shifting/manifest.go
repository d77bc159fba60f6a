package shifting

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
)

// parseManifest reads a manifest strictly: an unknown key is an error, so
// a bundle cannot carry what the node would ignore (or, from the old
// format, Caddy routes), and a syntax error names its line.
func parseManifest(raw []byte, name string) (*Manifest, error) {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(raw, &probe); err == nil {
		if _, ok := probe["routes"]; ok {
			return nil, fmt.Errorf("bundle: %s has \"routes\": a bundle holds no Caddy config, only static files, redirects, rewrites, headers, cache rules and functions (see the README)", name)
		}
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	m := new(Manifest)
	if err := dec.Decode(m); err != nil {
		return nil, fmt.Errorf("bundle: %s%s: %v", name, lineOf(raw, err), err)
	}
	if dec.More() {
		return nil, fmt.Errorf("bundle: %s: more than one JSON value", name)
	}
	if err := m.check(); err != nil {
		return nil, fmt.Errorf("bundle: %s: %v", name, err)
	}
	return m, nil
}

// lineOf is ", line N" for a JSON error that knows its offset.
func lineOf(raw []byte, err error) string {
	var off int64 = -1
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		off = se.Offset
	case errors.As(err, &te):
		off = te.Offset
	}
	if off < 0 || off > int64(len(raw)) {
		return ""
	}
	return ", line " + strconv.Itoa(bytes.Count(raw[:off], []byte("\n"))+1)
}

// VersionNumber is the manifest's version as a number.
func (m *Manifest) VersionNumber() uint64 { n, _ := parseVersion(m.Version); return n }

// RollbackNumber is the version a rollback replaces (0: not a rollback).
func (m *Manifest) RollbackNumber() uint64 { n, _ := parseVersion(m.RollbackFrom); return n }

func parseVersion(s string) (uint64, error) {
	n, err := strconv.ParseUint(s, 10, 63)
	if err != nil || n == 0 || strconv.FormatUint(n, 10) != s {
		return 0, fmt.Errorf("version %q: want a whole number from 1 that grows with every build, such as \"7\"", s)
	}
	return n, nil
}

func (m *Manifest) check() error {
	if !validSiteName(m.Site) {
		return fmt.Errorf("site %q is not a host name", m.Site)
	}
	if _, err := parseVersion(m.Version); err != nil {
		return err
	}
	if m.RollbackFrom != "" {
		from, err := parseVersion(m.RollbackFrom)
		if err != nil {
			return fmt.Errorf("rollback_from: %v", err)
		}
		if from <= m.VersionNumber() {
			return fmt.Errorf("rollback_from %s is not above version %s: a rollback goes back", m.RollbackFrom, m.Version)
		}
	}
	if n := len(m.Redirects) + len(m.Rewrites) + len(m.Headers) + len(m.Cache) + len(m.Functions); n > maxRules {
		return fmt.Errorf("%d rules: at most %d", n, maxRules)
	}
	for i, r := range m.Redirects {
		if err := checkPattern(r.From); err != nil {
			return fmt.Errorf("redirects[%d].from: %v", i, err)
		}
		if err := checkTarget(r.To, true); err != nil {
			return fmt.Errorf("redirects[%d].to: %v", i, err)
		}
		switch r.Status {
		case 0, 301, 302, 303, 307, 308:
		default:
			return fmt.Errorf("redirects[%d].status %d: want 301, 302, 303, 307 or 308", i, r.Status)
		}
	}
	for i, r := range m.Rewrites {
		if err := checkPattern(r.From); err != nil {
			return fmt.Errorf("rewrites[%d].from: %v", i, err)
		}
		if err := checkTarget(r.To, false); err != nil {
			return fmt.Errorf("rewrites[%d].to: %v", i, err)
		}
	}
	for i, h := range m.Headers {
		if err := checkPattern(h.Path); err != nil {
			return fmt.Errorf("headers[%d].path: %v", i, err)
		}
		for k, v := range h.Set {
			if err := checkHeader(k, v); err != nil {
				return fmt.Errorf("headers[%d].set: %v", i, err)
			}
		}
		for _, k := range h.Delete {
			if err := checkHeader(k, ""); err != nil {
				return fmt.Errorf("headers[%d].delete: %v", i, err)
			}
		}
	}
	for i, c := range m.Cache {
		if err := checkPattern(c.Path); err != nil {
			return fmt.Errorf("cache[%d].path: %v", i, err)
		}
		if err := checkHeader("Cache-Control", c.CacheControl); err != nil || c.CacheControl == "" {
			return fmt.Errorf("cache[%d].cache_control %q: not a header value", i, c.CacheControl)
		}
	}
	for i, f := range m.Functions {
		if err := checkPattern(f.Path); err != nil {
			return fmt.Errorf("functions[%d].path: %v", i, err)
		}
		if !strings.HasPrefix(f.Module, "functions/") || path.Clean(f.Module) != f.Module || !strings.HasSuffix(f.Module, ".wasm") {
			return fmt.Errorf("functions[%d].module %q: want functions/<name>.wasm", i, f.Module)
		}
		if f.Timeout != "" {
			if d, err := time.ParseDuration(f.Timeout); err != nil || d <= 0 || d > 5*time.Minute {
				return fmt.Errorf("functions[%d].timeout %q: want a duration up to 5m", i, f.Timeout)
			}
		}
		if f.MaxMemory < 0 || f.MaxRequestBody < 0 || f.MaxResponse < 0 || f.Instances < 0 || f.Instances > 1024 {
			return fmt.Errorf("functions[%d]: limits must be positive (instances at most 1024)", i)
		}
	}
	return nil
}

// checkFiles checks the file list against the bundle's layout, and that
// every function's module is in it.
func (m *Manifest) checkFiles() error {
	if len(m.Files) > maxBundleFiles {
		return errors.New("too many files")
	}
	for name, sum := range m.Files {
		top, rest, _ := strings.Cut(name, "/")
		if path.Clean(name) != name || rest == "" || !slices.Contains(bundleDirs, top) {
			return fmt.Errorf("bundle: file %q is outside public/, functions/ and data/", name)
		}
		if len(sum) != 64 {
			return fmt.Errorf("bundle: file %q: hash %q", name, sum)
		}
	}
	for i, f := range m.Functions {
		if _, ok := m.Files[f.Module]; !ok {
			return fmt.Errorf("bundle: functions[%d].module %s is not in the bundle", i, f.Module)
		}
	}
	return nil
}

// checkPattern accepts "/exact", "/prefix/*" and "*".
func checkPattern(p string) error {
	switch {
	case p == "*":
		return nil
	case !strings.HasPrefix(p, "/"):
		return fmt.Errorf("%q: a path starts with /", p)
	case strings.Contains(strings.TrimSuffix(p, "*"), "*"):
		return fmt.Errorf("%q: * only at the end", p)
	case len(p) > 1024:
		return fmt.Errorf("path of %d bytes", len(p))
	}
	return nil
}

// checkTarget accepts a path, or (for redirects) an http(s) URL.
func checkTarget(t string, absolute bool) error {
	if strings.ContainsAny(t, "\r\n") || t == "" || len(t) > 2048 {
		return fmt.Errorf("%q is not a path", t)
	}
	if strings.HasPrefix(t, "/") && !strings.HasPrefix(t, "//") {
		return nil
	}
	if absolute {
		if u, err := url.Parse(t); err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" {
			return nil
		}
	}
	return fmt.Errorf("%q: want a path starting with /%s", t, map[bool]string{true: " or an http(s) URL"}[absolute])
}

func checkHeader(k, v string) error {
	if k == "" || strings.ContainsAny(k, " \t\r\n:") || strings.ContainsAny(v, "\r\n\x00") {
		return fmt.Errorf("header %q: %q", k, v)
	}
	switch http.CanonicalHeaderKey(k) {
	case "Connection", "Transfer-Encoding", "Content-Length", "Alt-Svc":
		// What the bundle's author cannot decide for the node: framing,
		// and the protocols the node offers.
		return fmt.Errorf("header %s is the node's, not the bundle's", k)
	}
	return nil
}
