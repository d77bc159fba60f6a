// The demo shop's cart, as an edge function: the summary of the visitor's
// cart (its cookie) against the price list the shop's bundle carries
// (data/catalogue.json), answered at the front-end, with the origin up or
// not. It runs the origin's own code (internal/shop/cart). Build:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o cart.wasm ./internal/shop/cartfn
//
// (the demo does, and ships it in the shop's bundle at /api/cart).
package main

//lint:file-ignore U1000 the host calls conductor_handle (go:wasmexport); built for linux, nothing does

import (
	"encoding/json"
	"net/http"

	"github.com/conductor-edge/conductor/edgefn/sdk"
	"github.com/conductor-edge/conductor/internal/shop/cart"
)

func main() {}

// prices is read once per instance: the bundle's data does not change
// under a running instance (a new bundle is a new pool).
var prices []cart.Item

//go:wasmexport conductor_handle
func handle() int32 { return sdk.Serve(http.HandlerFunc(serve)) }

func serve(w http.ResponseWriter, r *http.Request) {
	if prices == nil {
		b, err := sdk.ReadData("catalogue.json")
		if err == nil {
			err = json.Unmarshal(b, &prices)
		}
		if err != nil {
			http.Error(w, "price list: "+err.Error(), http.StatusInternalServerError)
			return
		}
	}
	cookie := ""
	if c, err := r.Cookie("cart"); err == nil {
		cookie = c.Value
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "private, no-store")
	w.Header().Set("Conductor-Answered-By", "edge-function")
	w.Write(cart.Compute(cookie, prices).JSON())
}
