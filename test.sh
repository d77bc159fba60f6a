#!/usr/bin/env bash
# The project's test command: every package, with the race detector.
# Extra arguments go to `go test` (e.g. ./test.sh -run TestEcho ./tmptransport/).
#
# The packages that measure time or CPU (internal/wan and
# internal/transportbench on an emulated WAN, which need root and skip
# without it; tmptransport, whose hardening tests bound the CPU an idle link
# or an attacker's packets cost, and the time a dial takes under a flood)
# run on their own after the rest, so that the end-to-end tests' processes
# do not skew their clocks.
set -euo pipefail
cd "$(dirname "$0")"
if [ "$#" -gt 0 ]; then
  exec go test -race -count=1 -timeout 25m "$@"
fi
timed="github.com/conductor-edge/conductor/tmptransport github.com/conductor-edge/conductor/internal/wan github.com/conductor-edge/conductor/internal/transportbench"
go test -race -count=1 -timeout 25m $(go list ./... | grep -v -F -x $(printf -- '-e %s ' $timed))
go test -race -count=1 -timeout 10m -p 1 $timed
