// Package sdk is what an edge function written in Go imports: it turns
// Conductor's edge function convention into a plain http.Handler, and
// wraps the host's functions (fetch through the front-end, the bundle's
// data files, the log).
//
// The convention (WASI preview 1, a reactor module):
//   - the module exports `conductor_handle`, which takes and returns
//     nothing but an i32 (0);
//   - each call is one request: the request arrives on stdin as an
//     HTTP/1.1 request (request line, header, body), and the response goes
//     to stdout CGI-style (header lines, `Status: 404` if not 200, a blank
//     line, the body);
//   - an instance serves many requests, one at a time: module globals
//     live on between them (like a Worker's global scope); stdin, stdout
//     and nothing else are per request.
//
// A Go function:
//
//	package main
//
//	import "github.com/conductor-edge/conductor/edgefn/sdk"
//
//	func main() {}
//
//	//go:wasmexport conductor_handle
//	func handle() int32 { return sdk.Serve(http.HandlerFunc(price)) }
//
// built with `GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o fn.wasm`.
package sdk

import (
	"bufio"
	"bytes"
	"fmt"
	"net/http"
	"os"
)

// Serve reads one request from stdin, runs h on it and writes the
// response to stdout. It returns 0, for conductor_handle to return.
func Serve(h http.Handler) int32 {
	req, err := http.ReadRequest(bufio.NewReader(os.Stdin))
	if err != nil {
		fmt.Fprintf(os.Stdout, "Status: 400\r\nContent-Type: text/plain\r\n\r\nbad request: %v\n", err)
		return 0
	}
	w := &recorder{header: http.Header{}}
	h.ServeHTTP(w, req)
	out := bufio.NewWriter(os.Stdout)
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if w.status != http.StatusOK {
		fmt.Fprintf(out, "Status: %d\r\n", w.status)
	}
	w.header.Write(out)
	out.WriteString("\r\n")
	out.Write(w.body.Bytes())
	out.Flush()
	return 0
}

type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) WriteHeader(s int) {
	if r.status == 0 {
		r.status = s
	}
}
func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(p)
}

// Fetch GETs url through the front-end's own routes (its cache, and the
// site's upstream over TMP). Relative URLs are the function's own site.
func Fetch(url string) (status int, body []byte, err error) {
	buf := make([]byte, 64<<10)
	for {
		status, n := hostFetch(url, buf)
		if status == 0 {
			return 0, nil, fmt.Errorf("fetch %s: refused", url)
		}
		if n <= len(buf) {
			return status, buf[:n], nil
		}
		buf = make([]byte, n) // the body was larger: again, with room for it
	}
}

// ReadData reads one of the bundle's data files.
func ReadData(name string) ([]byte, error) {
	buf := make([]byte, 64<<10)
	for {
		n := hostReadData(name, buf)
		if n < 0 {
			return nil, fmt.Errorf("data file %s: %w", name, os.ErrNotExist)
		}
		if n <= len(buf) {
			return buf[:n], nil
		}
		buf = make([]byte, n)
	}
}

// Log writes a line to the front-end's log (zap, rate-limited there).
func Log(format string, args ...any) { hostLog(fmt.Sprintf(format, args...)) }
