package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/conductor-edge/conductor/internal/topology"
)

// l4Topology is an origin, a back-end and a front-end whose layer4 app
// carries TCP services over TMP. services maps a service name to its
// origin address at the back-end; routes are the front-end's layer4
// listeners: its port on the front-end's host → the service it carries.
type l4Topology struct {
	tp     *topology.Topology
	listen map[string]string // service → front-end address
}

func startL4(t *testing.T, services map[string]string, frontOnly ...string) *l4Topology {
	t.Helper()
	return startL4With(t, l4Setup{services: services, frontOnly: frontOnly})
}

// l4Setup is what startL4With builds: services at the back-end (name →
// origin address), further front-end routes to names it does not list,
// the services whose front-end listener terminates TLS first (caddy-l4's
// `tls` handler), and site blocks that give the front-end certificates.
type l4Setup struct {
	services  map[string]string
	frontOnly []string
	tls       map[string]bool
	sites     string
}

func startL4With(t *testing.T, o l4Setup) *l4Topology {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: end-to-end")
	}
	fe := fmt.Sprintf("127.0.0.4:%d", freePort(t, "127.0.0.4"))
	feHost, _, _ := net.SplitHostPort(fe)
	backend := fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1"))
	l := &l4Topology{listen: map[string]string{}}
	var conductor, routes strings.Builder
	for name, addr := range o.services {
		fmt.Fprintf(&conductor, "service %s %s\n\t\t", name, addr)
	}
	for _, name := range append(mapKeys(o.services), o.frontOnly...) {
		a := fmt.Sprintf("%s:%d", feHost, freePort(t, feHost))
		l.listen[name] = a
		terminate := ""
		if o.tls[name] {
			terminate = "\t\t\t\ttls\n"
		}
		fmt.Fprintf(&routes, "\t\t%s {\n\t\t\troute {\n%s\t\t\t\ttmp %s %s\n\t\t\t}\n\t\t}\n", a, terminate, backend, name)
	}
	global := "\tlayer4 {\n" + routes.String() + "\t}\n"
	if o.sites != "" {
		// An https site would otherwise make Caddy redirect from port 80.
		global = "\tauto_https disable_redirects\n" + global
	}
	dir := filepath.Join(tmpDir, "l4-"+t.Name())
	tp, err := topology.Start(context.Background(), topology.Options{
		Binary: binary, Dir: dir,
		OriginAddr:       fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1")),
		BackendTMP:       backend,
		Frontends:        []string{fe},
		AdminBase:        freeAdminBase(t, 2),
		BackendConductor: strings.TrimSpace(conductor.String()),
		FrontendGlobal:   global,
		FrontendSites:    o.sites,
		Progress:         func(f string, a ...any) { t.Logf(f, a...) },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tp.Stop)
	l.tp = tp
	return l
}

func mapKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// serviceMetric reads the back-end's count of service streams with an
// outcome.
func (l *l4Topology) serviceMetric(t *testing.T, service, outcome string) int {
	t.Helper()
	_, body := get(t, "http://"+l.tp.BackendAdmin()+"/metrics")
	re := regexp.MustCompile(`conductor_tmp_service_streams_total\{outcome="` + outcome + `",service="` + regexp.QuoteMeta(service) + `"\} ([0-9.e+]+)`)
	m := re.FindSubmatch(body)
	if m == nil {
		return 0
	}
	n, _ := strconv.ParseFloat(string(m[1]), 64)
	return int(n)
}

// startRedis runs Debian's redis-server on a free loopback port.
func startRedis(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server is not installed (.ci/run installs the Debian package redis-server): %v", err)
	}
	port := freePort(t, "127.0.0.1")
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", t.TempDir(), "--protected-mode", "yes")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	waitUntil(t, 10*time.Second, "redis to listen", func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return addr
}

func redisCLI(t *testing.T, addr string, stdin []byte, args ...string) []byte {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command("redis-cli", append([]string{"-h", host, "-p", port}, args...)...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli %v: %v: %.200s", args, err, out)
	}
	return out
}

// TestL4RedisOverTMP: Debian's redis-cli talks to Debian's redis-server
// through the front-end: a TCP connection to the front-end's layer4
// listener, one TMP stream naming the service "redis", the back-end's
// connection to redis. SET and GET, and a value of 2 MB.
func TestL4RedisOverTMP(t *testing.T) {
	redis := startRedis(t)
	l := startL4(t, map[string]string{"redis": redis})
	front := l.listen["redis"]
	waitUntil(t, 15*time.Second, "the layer4 listener", func() bool {
		c, err := net.Dial("tcp", front)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	if out := redisCLI(t, front, nil, "SET", "greeting", "hello over TMP"); strings.TrimSpace(string(out)) != "OK" {
		t.Fatalf("SET: %q", out)
	}
	if out := redisCLI(t, front, nil, "GET", "greeting"); strings.TrimSpace(string(out)) != "hello over TMP" {
		t.Fatalf("GET: %q", out)
	}
	raw := make([]byte, 1<<20)
	rand.Read(raw)
	big := []byte(hex.EncodeToString(raw)) // 2 MB
	if out := redisCLI(t, front, big, "-x", "SET", "big"); strings.TrimSpace(string(out)) != "OK" {
		t.Fatalf("SET big: %q", out)
	}
	out := redisCLI(t, front, nil, "--raw", "GET", "big")
	if got := bytes.TrimRight(out, "\n"); !bytes.Equal(got, big) {
		t.Fatalf("GET big: %d bytes back, want %d", len(got), len(big))
	}
	// It went through redis, not somewhere else.
	if out := redisCLI(t, redis, nil, "STRLEN", "big"); strings.TrimSpace(string(out)) != strconv.Itoa(len(big)) {
		t.Fatalf("redis itself holds %q bytes", out)
	}
	if n := l.serviceMetric(t, "redis", "connected"); n < 4 {
		t.Errorf("back-end counted %d redis streams, want 4", n)
	}
}

// TestL4UnknownServiceRefused: a front-end route names a service the
// back-end does not list. The back-end refuses the stream without dialing
// anything, the client's connection ends at once, and the refusal is
// counted.
func TestL4UnknownServiceRefused(t *testing.T) {
	redis := startRedis(t)
	l := startL4(t, map[string]string{"redis": redis}, "ssh")
	front := l.listen["ssh"]
	waitUntil(t, 15*time.Second, "a refusal", func() bool {
		c, err := net.Dial("tcp", front)
		if err != nil {
			return false
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Write([]byte("SSH-2.0-test\r\n"))
		n, err := c.Read(make([]byte, 64))
		return n == 0 && err != nil && !errors.Is(err, os.ErrDeadlineExceeded)
	})
	if n := l.serviceMetric(t, "ssh", "refused"); n < 1 {
		t.Fatalf("back-end counted %d refused ssh streams", n)
	}
	if n := l.serviceMetric(t, "ssh", "connected"); n != 0 {
		t.Fatalf("back-end connected %d ssh streams to something", n)
	}
}

// TestL4HalfCloseAndReset: half-close passes both ways (a client sends its
// whole request, closes its side, and still reads the answer), and a reset
// on either side reaches the other as a reset.
func TestL4HalfCloseAndReset(t *testing.T) {
	// The origins: "count" reads to EOF, answers with what it counted and
	// closes; "rst" reads one byte and resets; "watch" reports how its
	// client's connection ended.
	count, rst, watch := listenTCP(t), listenTCP(t), listenTCP(t)
	var wg sync.WaitGroup
	t.Cleanup(func() { count.Close(); rst.Close(); watch.Close(); wg.Wait() })
	serve := func(ln net.Listener, f func(net.Conn)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				wg.Add(1)
				go func() { defer wg.Done(); f(c) }()
			}
		}()
	}
	serve(count, func(c net.Conn) {
		defer c.Close()
		n, _ := io.Copy(io.Discard, c)
		fmt.Fprintf(c, "read %d bytes", n)
	})
	serve(rst, func(c net.Conn) {
		c.Read(make([]byte, 1))
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
	})
	watched := make(chan error, 4)
	serve(watch, func(c net.Conn) {
		defer c.Close()
		_, err := io.Copy(io.Discard, c)
		watched <- err
	})
	l := startL4(t, map[string]string{"count": count.Addr().String(), "rst": rst.Addr().String(), "watch": watch.Addr().String()})

	// Half-close: 100 kB, then FIN; the answer still arrives.
	var c *net.TCPConn
	waitUntil(t, 15*time.Second, "the layer4 listener", func() bool {
		conn, err := net.Dial("tcp", l.listen["count"])
		if err == nil {
			c = conn.(*net.TCPConn)
		}
		return err == nil
	})
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := c.Write(make([]byte, 100_000)); err != nil {
		t.Fatal(err)
	}
	c.CloseWrite()
	answer, err := io.ReadAll(c)
	c.Close()
	if err != nil || string(answer) != "read 100000 bytes" {
		t.Fatalf("after half-close: %q %v", answer, err)
	}

	// The origin resets: the client sees a reset, not an orderly end.
	c2, err := net.Dial("tcp", l.listen["rst"])
	if err != nil {
		t.Fatal(err)
	}
	c2.SetDeadline(time.Now().Add(20 * time.Second))
	c2.Write([]byte("x"))
	_, err = io.ReadAll(c2)
	c2.Close()
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("the origin's reset reached the client as %v, want ECONNRESET", err)
	}

	// The client resets: the origin sees a reset.
	c3, err := net.Dial("tcp", l.listen["watch"])
	if err != nil {
		t.Fatal(err)
	}
	c3.Write([]byte("some bytes"))
	time.Sleep(200 * time.Millisecond) // the origin is connected and reading
	c3.(*net.TCPConn).SetLinger(0)
	c3.Close()
	select {
	case err := <-watched:
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("the client's reset reached the origin as %v, want ECONNRESET", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the origin never saw the client's reset")
	}
}

func listenTCP(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// TestL4SMTPOverTMP: a real SMTP exchange through the front-end: Debian's
// swaks sends a message to Debian's aiosmtpd (python3-aiosmtpd), which
// stores it in a Maildir; the message arrives whole.
func TestL4SMTPOverTMP(t *testing.T) {
	for _, bin := range []string{"/usr/bin/python3", "swaks"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s is not installed (.ci/run installs python3-aiosmtpd and swaks): %v", bin, err)
		}
	}
	port := freePort(t, "127.0.0.1")
	maildir := filepath.Join(t.TempDir(), "Maildir")
	smtpd := exec.Command("/usr/bin/python3", "-m", "aiosmtpd", "-n", "-l", fmt.Sprintf("127.0.0.1:%d", port), "-c", "aiosmtpd.handlers.Mailbox", maildir)
	smtpd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := smtpd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { smtpd.Process.Kill(); smtpd.Wait() })
	origin := fmt.Sprintf("127.0.0.1:%d", port)
	waitUntil(t, 15*time.Second, "aiosmtpd to listen", func() bool {
		c, err := net.Dial("tcp", origin)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	l := startL4(t, map[string]string{"smtp": origin})
	front := l.listen["smtp"]
	body := "A message that crossed the TMP link " + hex.EncodeToString([]byte(t.Name()))
	out, err := exec.Command("swaks", "--server", front, "--from", "shop@example.com", "--to", "buyer@example.net",
		"--header", "Subject: over TMP", "--body", body, "--timeout", "20").CombinedOutput()
	if err != nil {
		t.Fatalf("swaks: %v\n%s", err, out)
	}
	if !bytes.Contains(out, []byte("250 ")) || !bytes.Contains(out, []byte("221 ")) {
		t.Fatalf("the SMTP exchange did not end well:\n%s", out)
	}
	var got []byte
	waitUntil(t, 10*time.Second, "the message in the Maildir", func() bool {
		files, _ := filepath.Glob(filepath.Join(maildir, "new", "*"))
		if len(files) != 1 {
			return false
		}
		got, _ = os.ReadFile(files[0])
		return bytes.Contains(got, []byte(body))
	})
	if !bytes.Contains(got, []byte("Subject: over TMP")) {
		t.Fatalf("stored message:\n%s", got)
	}
}

// TestL4PostgresOverTMP: Debian's psql queries Debian's PostgreSQL through
// the front-end (the startup message, trust authentication, a query and
// its rows, all over one TMP stream).
func TestL4PostgresOverTMP(t *testing.T) {
	bin := "/usr/lib/postgresql/15/bin"
	for _, p := range []string{bin + "/initdb", bin + "/postgres", "psql", "runuser"} {
		if _, err := exec.LookPath(p); err != nil {
			t.Fatalf("%s is not installed (.ci/run installs postgresql): %v", p, err)
		}
	}
	pw, err := exec.Command("id", "-u", "postgres").Output()
	if err != nil {
		t.Fatalf("no postgres user (the postgresql package makes it): %v", err)
	}
	uid, _ := strconv.Atoi(strings.TrimSpace(string(pw)))
	// PostgreSQL runs as its own user, in a directory that user owns.
	dir, err := os.MkdirTemp("", "conductor-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chown(dir, uid, -1); err != nil {
		t.Fatal(err)
	}
	asPG := func(args ...string) *exec.Cmd {
		return exec.Command("runuser", append([]string{"-u", "postgres", "--"}, args...)...)
	}
	if out, err := asPG(bin+"/initdb", "-D", dir+"/data", "--auth=trust", "-U", "postgres").CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	port := freePort(t, "127.0.0.1")
	pg := asPG(bin+"/postgres", "-D", dir+"/data", "-p", strconv.Itoa(port), "-k", dir, "-c", "listen_addresses=127.0.0.1")
	pg.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(-pg.Process.Pid, syscall.SIGINT); pg.Wait() })
	origin := fmt.Sprintf("127.0.0.1:%d", port)
	psql := func(addr, query string) ([]byte, error) {
		host, p, _ := net.SplitHostPort(addr)
		return exec.Command("psql", "-h", host, "-p", p, "-U", "postgres", "-d", "postgres", "-At", "-c", query).CombinedOutput()
	}
	waitUntil(t, 30*time.Second, "PostgreSQL to answer", func() bool {
		_, err := psql(origin, "select 1")
		return err == nil
	})
	l := startL4(t, map[string]string{"postgres": origin})
	out, err := psql(l.listen["postgres"], "select 6 * 7 as answer, current_setting('port')")
	if err != nil || strings.TrimSpace(string(out)) != fmt.Sprintf("42|%d", port) {
		t.Fatalf("psql through the front-end: %v\n%s", err, out)
	}
	// 20,000 rows (660 kB), so the answer spans hundreds of TMP packets.
	out, err = psql(l.listen["postgres"], "select md5(g::text) from generate_series(1, 20000) g")
	rows := strings.Split(strings.TrimSpace(string(out)), "\n")
	if err != nil || len(rows) != 20000 || rows[0] != "c4ca4238a0b923820dcc509a6f75849b" || rows[19999] != "d9798cdf31c02d86b8b81cc119d94836" {
		t.Fatalf("20,000 rows: %v, %d rows, first %q", err, len(rows), rows[0])
	}
	if n := l.serviceMetric(t, "postgres", "connected"); n < 2 {
		t.Errorf("back-end counted %d postgres streams, want 2", n)
	}
}

// TestL4SharesLinkWithHTTP: a bulk TCP transfer and the front-end's HTTP
// ride one TMP session to the back-end, each at its own priority: the
// back-end sees one front-end session whose per-priority counters hold
// both, and HTTP requests keep being answered while the bulk stream runs.
// (How much faster urgent requests are than the bulk is for the
// benchmarks to measure.)
func TestL4SharesLinkWithHTTP(t *testing.T) {
	bulk := listenTCP(t)
	const size = 64 << 20
	var wg sync.WaitGroup
	t.Cleanup(func() { bulk.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := bulk.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				io.CopyN(c, zeroReader{}, size)
			}()
		}
	}()
	l := startL4(t, map[string]string{"bulk": bulk.Addr().String()})
	get(t, l.tp.FrontendURL(0)+"/") // the HTTP link is up
	c, err := net.Dial("tcp", l.listen["bulk"])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	done := make(chan int64, 1)
	go func() {
		n, _ := io.Copy(io.Discard, c)
		done <- n
	}()
	answered := 0
	for waiting := true; waiting; {
		select {
		case n := <-done:
			if n != size {
				t.Fatalf("bulk transfer: %d of %d bytes", n, size)
			}
			waiting = false
		default:
			if code, _ := get(t, l.tp.FrontendURL(0)+"/product/1"); code != 200 {
				t.Fatalf("HTTP during the bulk transfer: %d", code)
			}
			answered++
		}
	}
	if answered == 0 {
		t.Fatal("the bulk transfer ended before any HTTP request was made during it")
	}
	_, body := get(t, "http://"+l.tp.BackendAdmin()+"/metrics")
	re := regexp.MustCompile(`conductor_tmp_stream_bytes_total\{direction="sent",peer="([^"]+)",priority="(\d)",role="backend"\} ([0-9.e+]+)`)
	peers := map[string]bool{}
	sent := map[string]float64{}
	for _, m := range re.FindAllSubmatch(body, -1) {
		peers[string(m[1])] = true
		v, _ := strconv.ParseFloat(string(m[3]), 64)
		sent[string(m[2])] += v
	}
	if len(peers) != 1 {
		t.Fatalf("the back-end has %d front-end sessions, want 1 carrying both: %v", len(peers), peers)
	}
	if sent["3"] < size || sent["2"] == 0 {
		t.Fatalf("bytes sent per priority on the one session: %v (bulk at 3, HTTP at 2)", sent)
	}
	t.Logf("%d HTTP requests answered during a %d MB transfer on the same session; sent by priority: %v", answered, size>>20, sent)
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
