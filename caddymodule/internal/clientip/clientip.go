// Package clientip reads a request's client address as Caddy determined it,
// for the handlers that budget or bind something per client.
package clientip

import (
	"net"
	"net/http"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// Of returns the client's IP: Caddy's client_ip (trusted proxies applied),
// else the connection's remote address.
func Of(r *http.Request) string {
	if ip, ok := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string); ok && ip != "" {
		return ip
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
