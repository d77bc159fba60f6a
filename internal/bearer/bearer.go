// Package bearer says where a bearer secret (the manager token) may go: over
// HTTPS anywhere, over plain HTTP only to a loopback address. Anyone who can
// read one request in clear owns whatever the secret opens, so a
// configuration that would send it in clear is refused when it loads.
package bearer

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
)

// CheckURL returns an error naming the fix if a bearer secret sent to raw
// would travel in clear over a network.
func CheckURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	switch strings.ToLower(u.Scheme) {
	case "https":
		return nil
	case "http":
		if IsLoopback(u.Hostname()) {
			return nil
		}
		return fmt.Errorf("%s: the token would travel in clear; use https:// (plain http:// only to a loopback address)", raw)
	}
	return fmt.Errorf("%s: want an https:// URL", raw)
}

// IsLoopback reports whether host (a name or an address, without port)
// is this machine's loopback.
func IsLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// IsLoopbackListen reports whether a listen address (host:port) binds
// loopback only.
func IsLoopbackListen(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	return IsLoopback(host)
}
