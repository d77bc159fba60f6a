#!/usr/bin/env bash
# The project's test command: every package, with the race detector.
# Extra arguments go to `go test` (e.g. ./test.sh -run TestEcho ./tmptransport/).
set -euo pipefail
cd "$(dirname "$0")"
if [ "$#" -eq 0 ]; then
  set -- ./...
fi
exec go test -race -count=1 -timeout 25m "$@"
