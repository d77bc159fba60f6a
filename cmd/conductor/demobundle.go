package main

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/conductor-edge/conductor/internal/shop"
	"github.com/conductor-edge/conductor/internal/topology"
	"github.com/conductor-edge/conductor/shifting"
)

// The shop's bundle, which the demo builds, signs, pushes to the manager
// and assigns to both front-ends: a promotion page served from the
// front-ends' own disks, and the cart's summary as an edge function
// (internal/shop/cartfn, built here for wasip1) that answers with the
// origin stopped. Everything else of the site still comes from the origin.
const shopSiteJSON = `{
  "site": "shop.example",
  "version": "%d",
  "functions": [
    {"path": "/api/cart", "module": "functions/cart.wasm", "timeout": "1s", "instances": 8, "max_memory": 67108864}
  ],
  "cache": [{"path": "/promo/*", "cache_control": "public, max-age=300"}],
  "headers": [{"path": "/promo/*", "set": {"X-Shifted": "from the shop's bundle"}}],
  "redirects": [{"from": "/sale", "to": "/promo/", "status": 302}]
}`

const shopPromo = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Summer sale · Conductor Demo Shop</title></head>
<body><h1>Summer sale</h1><p>This page was shifted to the front-end in the shop's bundle: the origin never sees its requests.</p>
<p>Your cart, summed at the edge: <a href="/api/cart">/api/cart</a></p></body></html>
`

// shipShopBundle builds and ships the shop's bundle. It needs the Go
// toolchain and this repository (as `go run ./cmd/conductor demo` has);
// without them the demo runs without the bundle, and says so.
func shipShopBundle(t *topology.Topology, dir string, say func(string, ...any)) error {
	src := filepath.Join(dir, "shop-bundle")
	os.RemoveAll(src)
	for _, d := range []string{"public/promo", "functions", "data"} {
		if err := os.MkdirAll(filepath.Join(src, d), 0o755); err != nil {
			return err
		}
	}
	say("building the cart's edge function (Go, GOOS=wasip1) …")
	build := exec.Command("go", "build", "-buildmode=c-shared", "-o", filepath.Join(src, "functions", "cart.wasm"),
		"github.com/conductor-edge/conductor/internal/shop/cartfn")
	build.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("building the cart function (run the demo from the repository, with Go): %v\n%s", err, out)
	}
	prices, _ := json.Marshal(shop.Prices())
	files := map[string]string{
		"site.json":               fmt.Sprintf(shopSiteJSON, time.Now().Unix()),
		"public/promo/index.html": shopPromo,
		"data/catalogue.json":     string(prices),
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(src, name), []byte(body), 0o644); err != nil {
			return err
		}
	}
	data, digest, sig, err := shifting.Build(src, t.Opts.BundleKey, "")
	if err != nil {
		return err
	}
	status, body, err := t.AdminDo("POST", "/v1/bundles", data, "X-Bundle-Digest", digest, "X-Bundle-Signature", hex.EncodeToString(sig))
	if err == nil && status != 201 {
		err = fmt.Errorf("manager: %d %s", status, body)
	}
	if err != nil {
		return err
	}
	for i := range t.Opts.Frontends {
		node := fmt.Sprintf("fe%d", i+1)
		if err := retry(func() (int, []byte, error) {
			return t.AdminDo("POST", "/v1/sites/shop.example/assign", []byte(`{"node": "`+node+`"}`))
		}); err != nil {
			return fmt.Errorf("assigning to %s: %w", node, err)
		}
	}
	// The shop's back-end, as the operator assigns it: front-ends follow
	// the assignment (reverse_proxy { dynamic conductor }).
	if err := retry(func() (int, []byte, error) {
		return t.AdminDo("POST", "/v1/sites/shop.example/backends", []byte(`{"node": "be1"}`))
	}); err != nil {
		return fmt.Errorf("assigning be1: %w", err)
	}
	say("shop bundle %s (%d bytes, signed) assigned to every front-end, back-end be1 to the site", digest[:19], len(data))
	return nil
}

// retry calls the manager until it answers 200: a node is known once it
// has reported (every 500 ms in the demo).
func retry(call func() (int, []byte, error)) error {
	for try := 0; ; try++ {
		status, body, err := call()
		if err == nil && status == 200 {
			return nil
		}
		if try == 40 {
			return fmt.Errorf("%d %s %v", status, body, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}
