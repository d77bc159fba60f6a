package caddymodule

// The edge handlers live in sub-packages, one concern each; importing
// caddymodule (as xcaddy --with does) registers them all, with caddy-l4's
// layer4 app and its standard modules, which layer4.handlers.tmp (l4.go)
// works inside.
import (
	_ "github.com/mholt/caddy-l4"

	_ "github.com/conductor-edge/conductor/caddymodule/adapt"
	_ "github.com/conductor-edge/conductor/caddymodule/agent"
	_ "github.com/conductor-edge/conductor/caddymodule/bundle"
	_ "github.com/conductor-edge/conductor/caddymodule/edgecache"
	_ "github.com/conductor-edge/conductor/caddymodule/edgefn"
	_ "github.com/conductor-edge/conductor/caddymodule/esi"
	_ "github.com/conductor-edge/conductor/caddymodule/fallback"
	_ "github.com/conductor-edge/conductor/caddymodule/loadindex"
	_ "github.com/conductor-edge/conductor/caddymodule/redirect"
	_ "github.com/conductor-edge/conductor/caddymodule/waitingroom"
)
