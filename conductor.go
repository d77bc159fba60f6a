// Package conductor registers all of Conductor's Caddy modules when
// imported, so that `xcaddy build --with github.com/conductor-edge/conductor`
// gets everything. The modules live in caddymodule; the TMP transport in
// tmptransport.
package conductor

import _ "github.com/conductor-edge/conductor/caddymodule"
