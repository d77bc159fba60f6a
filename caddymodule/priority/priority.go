// Package priority is a request's priority as Conductor's handlers see it:
// the `priority` handler sets it, and the tmp transport (the stream's
// priority on the link), the load gate and the waiting room (who passes)
// read it. One place for the variable, the default and the range, so that
// they cannot disagree.
package priority

import (
	"context"
	"strconv"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// Var is the request variable that carries the priority; a Caddyfile can
// read it as {http.vars.conductor_priority}.
const Var = "conductor_priority"

// Levels is the number of priorities, 0 (most urgent) to Levels-1; the
// same as TMP's (tmptransport.NumPriorities, SPEC §9).
const Levels = 5

// Default is the priority of a request no rule classified.
const Default = 2

// Valid reports whether p is a priority.
func Valid(p int) bool { return p >= 0 && p < Levels }

// Set gives the request in ctx the priority p.
func Set(ctx context.Context, p int) { caddyhttp.SetVar(ctx, Var, p) }

// Of is the priority of the request in ctx, and whether one was set (by
// the priority handler, or by a `vars` directive as a number): without
// one, or with one out of range, it is def.
func Of(ctx context.Context, def int) (int, bool) {
	p := def
	switch v := caddyhttp.GetVar(ctx, Var).(type) {
	case int:
		p = v
	case string:
		n, err := strconv.Atoi(v)
		if err != nil {
			return def, false
		}
		p = n
	default:
		return def, false
	}
	if !Valid(p) {
		return def, false
	}
	return p, true
}
