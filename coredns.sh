#!/usr/bin/env bash
# Builds a stock CoreDNS v1.15.0 with the conductor plugin into bin/coredns,
# the way CoreDNS documents external plugins: a line in plugin.cfg, then
# `go generate` and `go build`. (`conductor dns` is the other way: our own
# main with the plugin inserted into the directive order.)
set -euo pipefail
cd "$(dirname "$0")"
here=$(pwd)
src=$(go mod download -json github.com/coredns/coredns@v1.15.0 | sed -n 's/.*"Dir": "\(.*\)",/\1/p')
work=$(mktemp -d)
trap 'chmod -R u+w "$work"; rm -rf "$work"' EXIT
cp -r "$src/." "$work/"
chmod -R u+w "$work"
cd "$work"
# conductor goes just before file (see corednsplugin/README.md, Plugin order).
sed -i 's|^file:file$|conductor:github.com/conductor-edge/conductor/corednsplugin\nfile:file|' plugin.cfg
grep -q '^conductor:' plugin.cfg
go mod edit -replace "github.com/conductor-edge/conductor=$here"
go mod edit -require "github.com/conductor-edge/conductor@v0.0.0"
GOFLAGS=-mod=mod go generate coredns.go
GOFLAGS=-mod=mod go build -o "$here/bin/coredns" .
plugins=$("$here/bin/coredns" -plugins) # read whole: grep -q on a pipe can SIGPIPE it
grep -qx '  *conductor\|conductor\|dns.conductor' <<<"$plugins"
echo "built bin/coredns with the conductor plugin"
