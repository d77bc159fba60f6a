package shifting

import (
	_ "embed"
	"net/http"
)

//go:embed status.html
var statusPage []byte

// serveStatus serves the status page; it reads /v1/state with the token
// the operator gives it (kept in the browser's session storage) and
// refreshes every 2 s.
func serveStatus(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(statusPage)
}
