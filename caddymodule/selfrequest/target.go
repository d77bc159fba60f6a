package selfrequest

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// ErrRefused is Target's answer for a URL a self-request may not name.
var ErrRefused = errors.New("host not allowed")

// AllowList is a set of hosts a self-request may name besides the
// client's own: "partner.example", "partner.example:8080", or
// "*.example.com" for its subdomains. Entries are matched without case.
type AllowList []string

// Target resolves ref (relative or absolute) against base, the URL of the
// request being answered, and returns it if a self-request may fetch it:
// http or https, to base's own host or one on allow. Anything else is
// ErrRefused. What esi's includes and edge functions' fetches name goes
// through here, so neither can reach what a client could not.
func Target(base *url.URL, ref string, allow AllowList) (*url.URL, error) {
	r, err := url.Parse(strings.TrimSpace(ref))
	if err != nil {
		return nil, fmt.Errorf("%q: %w", ref, err)
	}
	u := base.ResolveReference(r)
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("%q: scheme %q: %w", ref, u.Scheme, ErrRefused)
	}
	if !strings.EqualFold(u.Host, base.Host) && !allow.has(u) {
		return nil, fmt.Errorf("%q: %w", ref, ErrRefused)
	}
	return u, nil
}

func (a AllowList) has(u *url.URL) bool {
	host, hostPort := strings.ToLower(u.Hostname()), strings.ToLower(u.Host)
	for _, e := range a {
		e = strings.ToLower(e)
		if e == host || e == hostPort || (strings.HasPrefix(e, "*.") && strings.HasSuffix(host, e[1:])) {
			return true
		}
	}
	return false
}
