// Command conductor is one binary for every Conductor role:
//
//	conductor caddy …   Caddy's own CLI, with the standard modules and Conductor's
//	conductor dns …     CoreDNS with its common plugins (and Conductor's, once built)
//	conductor demo      a whole local topology on loopback
//	conductor origin    the demo shop (an origin web server)
//	conductor bench …   side-by-side transport benchmarks on an emulated WAN
package main

import (
	"fmt"
	"os"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/conductor-edge/conductor/caddymodule"
)

func usage() {
	fmt.Fprint(os.Stderr, `usage: conductor <command> [arguments]

commands:
  caddy …    run Caddy with Conductor's modules (try: conductor caddy list-modules)
  dns …      run CoreDNS (try: conductor dns -conf Corefile)
  demo       run a whole local topology on loopback: origin shop, back-end,
             two front-ends (flags: conductor demo -h)
  origin     run the demo shop origin (flags: conductor origin -h)
  bench transport
             TMP against HTTP/2, HTTP/3 and HTTP/1.1 on an emulated WAN (root)
  bundle build DIR | push FILE | keygen
             site bundles for the shifting manager
  bench cache
             edge_cache hits against Caddy's file_server, with wrk
`)
}

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	cmd, args := os.Args[1], os.Args[2:]
	switch cmd {
	case "caddy":
		os.Args = append([]string{"conductor caddy"}, args...)
		caddycmd.Main()
	case "dns":
		os.Args = append([]string{"conductor dns"}, args...)
		runDNS()
	case "demo":
		os.Exit(runDemo(args))
	case "origin":
		os.Exit(runOrigin(args))
	case "bench":
		os.Exit(runBench(args))
	case "bundle":
		os.Exit(runBundle(args))
	case "help", "-h", "--help":
		usage()
	default:
		fmt.Fprintf(os.Stderr, "conductor: unknown command %q\n\n", cmd)
		usage()
		os.Exit(2)
	}
}
