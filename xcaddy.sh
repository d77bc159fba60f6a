#!/usr/bin/env bash
# Builds a stock Caddy with Conductor's modules into bin/caddy, with a pinned
# xcaddy. Extra arguments go to xcaddy build (e.g. --with other/plugin).
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p bin
go run github.com/caddyserver/xcaddy/cmd/xcaddy@v0.4.5 build v2.11.9 \
	--output bin/caddy \
	--with github.com/conductor-edge/conductor=. \
	"$@"
echo "built bin/caddy; try: bin/caddy list-modules | grep -E 'conductor|tmp'"
