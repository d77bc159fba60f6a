// The edge function the end-to-end tests run: one reactor module with a
// route per behaviour under test. Built with
// GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared.
package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/conductor-edge/conductor/edgefn/sdk"
)

func main() {}

// calls lives as long as the instance: module globals persist between
// the requests one instance serves.
var calls int

//go:wasmexport conductor_handle
func handle() int32 { return sdk.Serve(http.HandlerFunc(serve)) }

func serve(w http.ResponseWriter, r *http.Request) {
	calls++
	switch p := r.URL.Path; {
	case strings.HasSuffix(p, "/hello"):
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"hello":%q,"version":%q,"calls":%d}`, r.URL.Query().Get("name"), os.Getenv("VERSION"), calls)
	case strings.HasSuffix(p, "/sleep"):
		d, _ := time.ParseDuration(r.URL.Query().Get("d"))
		time.Sleep(d)
		fmt.Fprintf(w, `{"slept":%q,"version":%q}`, d, os.Getenv("VERSION"))
	case strings.HasSuffix(p, "/loop"):
		for i := 0; ; i++ {
			calls += i & 1
		}
	case strings.HasSuffix(p, "/alloc"):
		var keep [][]byte
		for i := 0; i < 1024; i++ {
			keep = append(keep, make([]byte, 1<<20))
		}
		fmt.Fprintf(w, "allocated %d MiB", len(keep))
	case strings.HasSuffix(p, "/ambient"):
		_, ferr := os.ReadFile("/etc/passwd")
		_, derr := net.Dial("tcp", "127.0.0.1:80")
		fmt.Fprintf(w, "file: %v\nsocket: %v\n", ferr, derr)
	case strings.HasSuffix(p, "/fetch"):
		status, body, err := sdk.Fetch(r.URL.Query().Get("u"))
		if err != nil {
			w.WriteHeader(http.StatusBadGateway)
			fmt.Fprintf(w, "fetch: %v", err)
			return
		}
		fmt.Fprintf(w, "fetched %d: %s", status, body)
	case strings.HasSuffix(p, "/data"):
		b, err := sdk.ReadData(r.URL.Query().Get("f"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		w.Write(b)
	case strings.HasSuffix(p, "/panic"):
		panic("the function panicked")
	default:
		http.NotFound(w, r)
	}
}
