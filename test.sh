#!/usr/bin/env bash
# The project's test command: every package, with the race detector.
# Extra arguments go to `go test` (e.g. ./test.sh -run TestEcho ./tmptransport/).
#
# The packages that measure time on an emulated WAN (internal/wan and
# internal/transportbench; they need root and skip without it) run on their
# own after the rest, so that the end-to-end tests' processes do not skew
# their clocks.
set -euo pipefail
cd "$(dirname "$0")"
if [ "$#" -gt 0 ]; then
  exec go test -race -count=1 -timeout 25m "$@"
fi
timed="github.com/conductor-edge/conductor/internal/wan github.com/conductor-edge/conductor/internal/transportbench"
go test -race -count=1 -timeout 25m $(go list ./... | grep -v -F -x $(printf -- '-e %s ' $timed))
go test -race -count=1 -timeout 10m -p 1 $timed
