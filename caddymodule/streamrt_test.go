package caddymodule

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// exchangeServer is an HTTP/1.1 server on loopback, as a back-end serves
// each TMP stream; exchanges go to it on fresh connections, as they would
// on fresh streams.
func exchangeServer(t *testing.T, h http.Handler) (*Transport, func(*http.Request) (*http.Response, error)) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	tr := &Transport{ResponseHeaderTimeout: caddy.Duration(500 * time.Millisecond)}
	tr.readers = &sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }}
	tr.writers = &sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4096) }}
	return tr, func(req *http.Request) (*http.Response, error) {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			return nil, err
		}
		return tr.exchange(req, c, false, nil)
	}
}

// One request per stream, HTTP/1.1: plain answers, bodies both ways, an
// early answer to a body still being sent, 1xx answers passed on, an
// upgrade handed over as the connection, and the header timeout.
func TestStreamExchange(t *testing.T) {
	_, do := exchangeServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/echo":
			io.Copy(w, r.Body)
		case "/early":
			w.WriteHeader(http.StatusRequestEntityTooLarge)
		case "/hints":
			w.Header().Set("Link", "</a.css>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
			w.Write([]byte("after hints"))
		case "/ws":
			w.Header().Set("Connection", "Upgrade")
			w.Header().Set("Upgrade", "echo")
			w.WriteHeader(http.StatusSwitchingProtocols)
			c, brw, _ := http.NewResponseController(w).Hijack()
			defer c.Close()
			line, _ := brw.ReadString('\n')
			brw.WriteString("echo " + line)
			brw.Flush()
		case "/hang":
			time.Sleep(2 * time.Second)
		default:
			w.Write([]byte("hello " + r.Header.Get("Connection")))
		}
	}))
	get := func(method, path string, body io.Reader) (*http.Response, string, error) {
		req, _ := http.NewRequest(method, "http://backend"+path, body)
		resp, err := do(req)
		if err != nil {
			return nil, "", err
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b), nil
	}
	if resp, body, err := get("GET", "/", nil); err != nil || resp.StatusCode != 200 || body != "hello " {
		t.Fatalf("GET: %v %v %q", err, resp, body)
	}
	if resp, body, err := get("HEAD", "/", nil); err != nil || resp.StatusCode != 200 || body != "" {
		t.Fatalf("HEAD: %v %v %q", err, resp, body)
	}
	big := strings.Repeat("x", 1<<20)
	if _, body, err := get("POST", "/echo", strings.NewReader(big)); err != nil || body != big {
		t.Fatalf("POST echo: %v, %d bytes", err, len(body))
	}
	// A body that never ends: the answer comes first, and is returned.
	pr, pw := io.Pipe()
	defer pw.Close()
	go pw.Write([]byte("start of an endless body"))
	if resp, _, err := get("POST", "/early", pr); err != nil || resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("early answer: %v %v", err, resp)
	}
	// 103 Early Hints reach the trace, then the answer.
	var hints []string
	req, _ := http.NewRequest("GET", "http://backend/hints", nil)
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		hints = append(hints, h.Get("Link"))
		return nil
	}}))
	resp, err := do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "after hints" || len(hints) != 1 || hints[0] != "</a.css>; rel=preload" {
		t.Fatalf("early hints: %d %q %v", resp.StatusCode, b, hints)
	}
	// An upgrade: the body is the connection.
	req, _ = http.NewRequest("GET", "http://backend/ws", nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "echo")
	resp, err = do(req)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", err, resp)
	}
	rwc, ok := resp.Body.(io.ReadWriteCloser)
	if !ok {
		t.Fatal("a 101's body is not a ReadWriteCloser")
	}
	rwc.Write([]byte("ping\n"))
	line, _ := bufio.NewReader(rwc).ReadString('\n')
	rwc.Close()
	if line != "echo ping\n" {
		t.Fatalf("through the upgrade: %q", line)
	}
	// No headers within response_header_timeout.
	start := time.Now()
	if _, _, err := get("GET", "/hang", nil); err == nil || !strings.Contains(err.Error(), "timeout awaiting response headers") || time.Since(start) > 1500*time.Millisecond {
		t.Fatalf("header timeout: %v after %v", err, time.Since(start))
	}
	// A cancelled request ends at once.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ = http.NewRequestWithContext(ctx, "GET", "http://backend/hang", nil)
	start = time.Now()
	if _, err := do(req); err == nil || time.Since(start) > time.Second {
		t.Fatalf("cancelled: %v after %v", err, time.Since(start))
	}
}
