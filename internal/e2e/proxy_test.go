package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/websocket"
)

var client = &http.Client{Timeout: 60 * time.Second}

func get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading body: %v", url, err)
	}
	return resp.StatusCode, b
}

func TestGETThroughEveryFrontend(t *testing.T) {
	tp := shared(t)
	for i := range tp.Opts.Frontends {
		code, body := get(t, tp.FrontendURL(i)+"/")
		if code != 200 || !bytes.Contains(body, []byte("Conductor shop")) || !bytes.Contains(body, []byte("served by origin shop")) {
			t.Fatalf("front-end %d: %d %q", i+1, code, body)
		}
	}
	code, _ := get(t, tp.FrontendURL(0)+"/no-such-page")
	if code != 404 {
		t.Fatalf("origin 404 came through as %d", code)
	}
}

func TestPOST10MBByteExact(t *testing.T) {
	tp := shared(t)
	body := make([]byte, 10<<20)
	rand.Read(body)
	resp, err := client.Post(tp.FrontendURL(0)+"/echo", "application/octet-stream", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, body) {
		t.Fatalf("10 MB echo: got %d bytes, equal=%v", len(got), bytes.Equal(got, body))
	}
	sum := sha256.Sum256(body)
	resp2, err := client.Post(tp.FrontendURL(1)+"/sha256", "application/octet-stream", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp2.Body)
	resp2.Body.Close()
	if want := fmt.Sprintf("%d %s", len(body), hex.EncodeToString(sum[:])); string(b) != want {
		t.Fatalf("origin saw %q, want %q", b, want)
	}
}

func TestServerSentEventsStream(t *testing.T) {
	tp := shared(t)
	resp, err := client.Get(tp.FrontendURL(0) + "/events?n=6")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	sc := bufio.NewScanner(resp.Body)
	n := 0
	for sc.Scan() {
		if line := sc.Text(); strings.HasPrefix(line, "data: ") {
			if want := fmt.Sprintf("data: tick %d", n); line != want {
				t.Fatalf("event %d: %q, want %q", n, line, want)
			}
			n++
		}
	}
	if n != 6 {
		t.Fatalf("got %d events, want 6 (%v)", n, sc.Err())
	}
}

func TestWebSocketEcho(t *testing.T) {
	tp := shared(t)
	url := strings.Replace(tp.FrontendURL(1), "http://", "ws://", 1) + "/ws"
	ws, err := websocket.Dial(url, "", tp.FrontendURL(1))
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	for i := 0; i < 20; i++ {
		msg := fmt.Sprintf("message %d %s", i, strings.Repeat("x", i*100))
		if err := websocket.Message.Send(ws, msg); err != nil {
			t.Fatal(err)
		}
		var got string
		ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		if err := websocket.Message.Receive(ws, &got); err != nil {
			t.Fatal(err)
		}
		if got != msg {
			t.Fatalf("echo %d: %q", i, got)
		}
	}
}

func Test500ConcurrentRequests(t *testing.T) {
	tp := shared(t)
	var wg sync.WaitGroup
	var failed atomic.Int32
	errs := make(chan error, 500)
	for i := 0; i < 500; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			size := 1000 + 97*i
			resp, err := client.Get(fmt.Sprintf("%s/bytes/%d", tp.FrontendURL(i%2), size))
			if err != nil {
				failed.Add(1)
				errs <- err
				return
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != 200 || len(b) != size {
				failed.Add(1)
				errs <- fmt.Errorf("request %d: status %d, %d bytes of %d, %v", i, resp.StatusCode, len(b), size, err)
				return
			}
			for j := range b {
				if b[j] != byte((j%(32<<10))*7) {
					failed.Add(1)
					errs <- fmt.Errorf("request %d: byte %d differs", i, j)
					return
				}
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// The client's own address reaches the origin in X-Forwarded-For, through
// the front-end and the back-end (which trusts its front-ends).
func TestClientAddressReachesOrigin(t *testing.T) {
	tp := shared(t)
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.9")}}
	c := &http.Client{Transport: &http.Transport{DialContext: d.DialContext}, Timeout: 10 * time.Second}
	resp, err := c.Get(tp.FrontendURL(0) + "/whoami")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var who map[string]any
	json.NewDecoder(resp.Body).Decode(&who)
	xff, _ := who["x_forwarded_for"].(string)
	if !strings.HasPrefix(xff, "127.0.0.9") {
		t.Fatalf("origin saw X-Forwarded-For %q, want the client 127.0.0.9 first", xff)
	}
}

func TestSessionMetrics(t *testing.T) {
	tp := shared(t)
	get(t, tp.FrontendURL(0)+"/")
	_, body := get(t, "http://"+tp.FrontendAdmin(0)+"/metrics")
	peer := fmt.Sprintf(`peer="%s",role="frontend"`, tp.Opts.BackendTMP)
	for _, want := range []string{
		"conductor_tmp_session_open_streams{" + peer + "}",
		"conductor_tmp_session_rtt_seconds{" + peer + "}",
		"conductor_tmp_session_packet_size_bytes{" + peer + "}",
		"conductor_tmp_session_bytes_in_flight{" + peer + "}",
		"conductor_tmp_session_send_buffered_bytes{" + peer + "}",
		`conductor_tmp_session_flow_control_window_bytes{direction="outbound",` + peer + "}",
		`conductor_tmp_session_flow_control_window_bytes{direction="inbound",` + peer + "}",
		`conductor_tmp_session_loss_ratio{direction="inbound",` + peer + "}",
		`conductor_tmp_session_loss_ratio{direction="outbound",` + peer + "}",
		fmt.Sprintf(`conductor_tmp_stream_bytes_total{direction="sent",peer="%s",priority="2",role="frontend"}`, tp.Opts.BackendTMP),
	} {
		if !bytes.Contains(body, []byte(want)) {
			t.Errorf("front-end metrics lack %s", want)
		}
	}
	// Packets and their bytes, both ways: a request went out and its
	// answer came back, and no packet is smaller than its header and tag.
	for _, dir := range []string{"sent", "received"} {
		labels := fmt.Sprintf(`direction="%s",`, dir) + peer
		n := frontendMetric(t, tp, 0, "conductor_tmp_session_packets_total", labels)
		b := frontendMetric(t, tp, 0, "conductor_tmp_session_packet_bytes_total", labels)
		if n == 0 || b < 20*n {
			t.Errorf("%s: %v packets of %v bytes", dir, n, b)
		}
	}
	if !bytes.Contains(body, []byte("conductor_tmp_session_retransmitted_bytes_total{"+peer+"}")) {
		t.Error("front-end metrics lack conductor_tmp_session_retransmitted_bytes_total")
	}
	_, body = get(t, "http://"+tp.BackendAdmin()+"/metrics")
	if !bytes.Contains(body, []byte(`role="backend"`)) {
		t.Error("back-end metrics lack its sessions")
	}
}

// Restart: the back-end stops and starts again; the next request through a
// front-end succeeds, on a re-established session.
func TestBackendRestart(t *testing.T) {
	tp := shared(t)
	get(t, tp.FrontendURL(0)+"/")
	if err := tp.StopProc("backend"); err != nil {
		t.Fatal(err)
	}
	if err := tp.StartProc("backend"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := tp.WaitReady(ctx, "http://"+tp.BackendAdmin()+"/config/"); err != nil {
		t.Fatal(err)
	}
	code, body := get(t, tp.FrontendURL(0)+"/product/2")
	if code != 200 || !bytes.Contains(body, []byte("Edge mug")) {
		t.Fatalf("first request after the back-end restarted: %d %q", code, body)
	}
}

// Reload: `caddy reload` of a front-end under load drops no request.
func TestReloadUnderLoad(t *testing.T) {
	tp := shared(t)
	// A new connection per request, so that connections sit in the
	// listener's accept queue at every reload. Caddy opens a fresh
	// SO_REUSEPORT socket for each config and closes the old one after the
	// reload, and the kernel resets what is still queued on the closed one
	// (listen_unix.go, listenReusable; https://lwn.net/Articles/542629/).
	// That is the front-end's deployment to own, not the client's: the
	// topology hands each front-end one socket (`bind fd/3`, socket
	// activation as under systemd), which every config shares, so nothing
	// is queued on a socket that closes. With it, no connection is reset.
	//
	// One race is left, and it is Go's: a connection the old config's
	// server accepted, whose request it reads after its Shutdown began, is
	// closed without an answer (net/http server.go, conn.serve: "if
	// c.server.shuttingDown() { return }"). The client sees EOF before any
	// byte, which RFC 9110 §9.2.2 lets it retry for an idempotent request,
	// as browsers do; the test does that, once, and counts it. No request
	// may fail otherwise: no reset, no error status, no cut body.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 30 * time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	var ok, bad, unanswered atomic.Int64
	var wg sync.WaitGroup
	var firstErr atomic.Value
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				resp, err := client.Get(tp.FrontendURL(0) + "/bytes/50000")
				if err != nil && errors.Is(err, io.EOF) {
					unanswered.Add(1)
					resp, err = client.Get(tp.FrontendURL(0) + "/bytes/50000")
				}
				if err != nil {
					bad.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				n, err := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 || n != 50000 {
					bad.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprintf("status %d, %d bytes, %v", resp.StatusCode, n, err))
					continue
				}
				ok.Add(1)
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	for gen := 1; gen <= 3; gen++ {
		if err := tp.Reload(0, fmt.Sprintf("header X-Config-Generation %d", gen)); err != nil {
			cancel()
			wg.Wait()
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	resp, err := client.Get(tp.FrontendURL(0) + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if g := resp.Header.Get("X-Config-Generation"); g != "3" {
		t.Fatalf("reload did not apply: generation %q", g)
	}
	t.Logf("%d requests during 3 reloads, %d failed; %d closed unanswered by a shutting-down server (retried)", ok.Load(), bad.Load(), unanswered.Load())
	if bad.Load() > 0 || ok.Load() == 0 {
		t.Fatalf("%d of %d requests failed across reloads; first: %v", bad.Load(), ok.Load()+bad.Load(), firstErr.Load())
	}
}

// Kept streams: sequential GETs through a front-end to the origin ride the
// stream the last one left open (HTTP/1.1 keep-alive on a stream), while a
// request with a body opens a stream of its own. Counted by the front-end's
// conductor_tmp_session_streams_opened_total, against real Caddys.
func TestKeptStreamsServeSequentialRequests(t *testing.T) {
	tp := shared(t)
	labels := fmt.Sprintf(`peer="%s",role="frontend"`, tp.Opts.BackendTMP)
	const name = "conductor_tmp_session_streams_opened_total"
	get(t, tp.FrontendURL(0)+"/whoami") // a session, and a stream to keep
	_, body := get(t, "http://"+tp.FrontendAdmin(0)+"/metrics")
	if !bytes.Contains(body, []byte(name+"{"+labels+"}")) {
		t.Fatalf("front-end metrics lack %s{%s}", name, labels)
	}
	before := frontendMetric(t, tp, 0, name, labels)
	const n = 50
	for i := range n {
		code, b := get(t, tp.FrontendURL(0)+"/whoami")
		if code != 200 || !bytes.Contains(b, []byte("x_forwarded_for")) {
			t.Fatalf("request %d: %d %q", i, code, b)
		}
	}
	// Health checks and other traffic of the shared topology may open a
	// few; one stream per request would be 50.
	if opened := frontendMetric(t, tp, 0, name, labels) - before; opened > 5 {
		t.Fatalf("%d sequential GETs opened %.0f streams, want them on kept ones (at most 5)", n, opened)
	}
	before = frontendMetric(t, tp, 0, name, labels)
	resp, err := client.Post(tp.FrontendURL(0)+"/echo", "text/plain", strings.NewReader("body"))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if opened := frontendMetric(t, tp, 0, name, labels) - before; opened < 1 {
		t.Fatalf("a POST opened %.0f streams, want its own", opened)
	}
}
