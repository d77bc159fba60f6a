package loadindex

import "github.com/conductor-edge/conductor/caddymodule/internal/promreg"

var gateShed = promreg.CounterVec("load_gate", "shed_total",
	"Requests answered with the wait page because the origin's load index was high.",
	"name")
