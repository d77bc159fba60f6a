package loadindex

import "strings"

func firstField(v string) string {
	if i := strings.IndexByte(v, ';'); i >= 0 {
		v = v[:i]
	}
	return strings.TrimSpace(v)
}

func splitParams(v string) []string {
	parts := strings.Split(v, ";")
	if len(parts) > 8 {
		parts = parts[:8]
	}
	out := parts[:0]
	for _, p := range parts[1:] {
		out = append(out, strings.TrimSpace(p))
	}
	return out
}

func cut(s string, sep byte) (string, string, bool) {
	if i := strings.IndexByte(s, sep); i >= 0 {
		return strings.TrimSpace(s[:i]), strings.TrimSpace(s[i+1:]), true
	}
	return s, "", false
}
