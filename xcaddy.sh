#!/usr/bin/env bash
# Builds a stock Caddy with Conductor's modules into bin/caddy, with a pinned
# xcaddy. Extra arguments go to xcaddy build (e.g. --with other/plugin).
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p bin
# xcaddy replaces the module with this directory, but its final `go get`
# still asks the module proxy for the module's versions. Until the module is
# published, a one-entry file proxy in front of the real one answers that.
proxy=$(mktemp -d)
trap 'rm -rf "$proxy"' EXIT
mod="$proxy/github.com/conductor-edge/conductor/@v"
mkdir -p "$mod"
echo v0.0.0 > "$mod/list"
echo '{"Version":"v0.0.0"}' > "$mod/v0.0.0.info"
cp go.mod "$mod/v0.0.0.mod"
export GOPROXY="file://$proxy,${GOPROXY:-$(go env GOPROXY)}"
export GONOSUMDB="github.com/conductor-edge/*${GONOSUMDB:+,$GONOSUMDB}"
export GOFLAGS="-mod=mod"
go run github.com/caddyserver/xcaddy/cmd/xcaddy@v0.4.5 build v2.11.9 \
	--output bin/caddy \
	--with github.com/conductor-edge/conductor@v0.0.0=. \
	"$@"
echo "built bin/caddy; try: bin/caddy list-modules | grep -E 'conductor|tmp'"
