package caddymodule

// The edge handlers live in sub-packages, one concern each; importing
// caddymodule (as xcaddy --with does) registers them all.
import (
	_ "github.com/conductor-edge/conductor/caddymodule/agent"
	_ "github.com/conductor-edge/conductor/caddymodule/edgecache"
	_ "github.com/conductor-edge/conductor/caddymodule/fallback"
	_ "github.com/conductor-edge/conductor/caddymodule/loadindex"
	_ "github.com/conductor-edge/conductor/caddymodule/waitingroom"
)
