package shifting

import (
	_ "embed"
	"net/http"
)

//go:embed status.html
var statusPage []byte

// serveStatus serves the status page. The page holds no data: it reads
// /v1/state with the operator key it finds in its URL's fragment
// (/status#key=…, which browsers never send to a server, so the key is in
// no log), keeps it in the tab's session storage, removes it from the
// address bar, and refreshes every 2 s. /v1/state needs the read role.
func serveStatus(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(statusPage)
}
