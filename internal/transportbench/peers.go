// Package transportbench runs the same workloads over TMP and the transports
// people use instead (HTTP/2 over TLS/TCP with Cubic or BBR, HTTP/3 over
// quic-go, an HTTP/1.1 pool) on one emulated WAN link, in one run. Servers
// live in the link's namespace B, clients in A; the download direction
// (B → A) carries the profile's loss and bottleneck.
package transportbench

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"

	"github.com/conductor-edge/conductor/internal/wan"
	"github.com/conductor-edge/conductor/tmptransport"
)

// Peer is one transport under test.
type Peer interface {
	Name() string
	// Serve starts the server in namespace B; stop ends it.
	Serve(l *wan.Link) (stop func(), err error)
	// Dial connects a client from namespace A.
	Dial(ctx context.Context, l *wan.Link) (Client, error)
}

// retransmitCounter is implemented by peers that can tell how many of the
// data packets (or bytes) their server sent were retransmissions.
type retransmitCounter interface {
	// counters returns retransmitted and total sent units so far.
	counters(l *wan.Link) (retrans, sent uint64, ok bool)
}

// Client downloads size bytes; urgent asks for the highest priority.
type Client interface {
	Get(ctx context.Context, size int, urgent bool) (int64, error)
	Close()
}

// Peers returns the peers by their JSON keys.
func Peers() []Peer {
	return []Peer{&tmpPeer{}, &httpPeer{key: "http2-cubic", cc: "cubic", h2: true}, &httpPeer{key: "http2-bbr", cc: "bbr", h2: true}, &h3Peer{}, &httpPeer{key: "http1", cc: "cubic", pool: 6}}
}

const port = 9443

// pattern is the byte at offset i of every response, so that clients can
// check what they got.
func pattern(i int64) byte { return byte(i*31 + i>>8) }

var patternBlock = func() []byte {
	b := make([]byte, 64<<10)
	for i := range b {
		b[i] = pattern(int64(i))
	}
	return b
}()

func writePattern(w io.Writer, n int64) error {
	// The block is 64 KiB, a multiple of 256, so the pattern continues
	// across blocks only if pattern has period dividing 64 KiB: it does
	// (byte arithmetic mod 256 on i*31 + i>>8 has period 65536).
	for n > 0 {
		k := min(n, int64(len(patternBlock)))
		if _, err := w.Write(patternBlock[:k]); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

// readPattern reads to EOF and checks every byte.
func readPattern(r io.Reader) (int64, error) {
	buf := make([]byte, 32<<10)
	var off int64
	for {
		n, err := r.Read(buf)
		for i := 0; i < n; i++ {
			if buf[i] != pattern((off+int64(i))%65536) {
				return off, fmt.Errorf("corrupt byte at %d", off+int64(i))
			}
		}
		off += int64(n)
		if err == io.EOF {
			return off, nil
		}
		if err != nil {
			return off, err
		}
	}
}

// certs is a throwaway CA-free pair: one self-signed certificate used by
// servers and (for TMP's mutual authentication) clients.
func certs() (tls.Certificate, *x509.CertPool) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bench"},
		DNSNames: []string{"bench"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, IsCA: true, BasicConstraintsValid: true,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	c, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(c)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

var benchCert, benchPool = certs()

// udpIn opens a UDP socket on host:port inside a namespace (in is
// Link.InA or Link.InB).
func udpIn(in func(func() error) error, host string, port int) (pc net.PacketConn, err error) {
	err = in(func() (err error) {
		pc, err = net.ListenPacket("udp", net.JoinHostPort(host, strconv.Itoa(port)))
		return
	})
	return pc, err
}

// ---- TMP ----

type tmpPeer struct{ ln *tmptransport.Listener }

func (*tmpPeer) Name() string { return "tmp" }

// counters sums the server sessions' retransmitted and new stream bytes.
func (p *tmpPeer) counters(*wan.Link) (uint64, uint64, bool) {
	if p.ln == nil {
		return 0, 0, false
	}
	var re, sent uint64
	for _, s := range p.ln.Sessions() {
		st := s.Stats()
		re += st.RetransmittedBytes
		for _, b := range st.StreamBytesSent {
			sent += b
		}
	}
	return re, sent, true
}

func (p *tmpPeer) Serve(l *wan.Link) (func(), error) {
	pc, err := udpIn(l.InB, l.AddrB.String(), port)
	if err != nil {
		return nil, err
	}
	ln, err := tmptransport.NewListener(pc, &tmptransport.Config{TLSConfig: &tls.Config{Certificates: []tls.Certificate{benchCert}, ClientCAs: benchPool, ClientAuth: tls.RequireAndVerifyClientCert}})
	if err != nil {
		pc.Close()
		return nil, err
	}
	p.ln = ln
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for {
			s, err := ln.Accept(ctx)
			if err != nil {
				return
			}
			go func() {
				for {
					st, err := s.AcceptStream(ctx)
					if err != nil {
						return
					}
					go serveTMPStream(st)
				}
			}()
		}
	}()
	return func() { cancel(); ln.Close(); pc.Close() }, nil
}

func serveTMPStream(st *tmptransport.Stream) {
	defer st.Close()
	line, err := bufio.NewReader(st).ReadString('\n')
	if err != nil {
		return
	}
	n, err := strconv.ParseInt(line[:len(line)-1], 10, 64)
	if err != nil || n < 0 {
		st.Reset(tmptransport.ProtocolViolation)
		return
	}
	if writePattern(st, n) != nil {
		return
	}
	st.CloseWrite()
}

type tmpClient struct {
	s  *tmptransport.Session
	pc net.PacketConn
}

func (*tmpPeer) Dial(ctx context.Context, l *wan.Link) (Client, error) {
	pc, err := udpIn(l.InA, l.AddrA.String(), 0)
	if err != nil {
		return nil, err
	}
	s, err := tmptransport.DialConn(ctx, pc, &net.UDPAddr{IP: l.AddrB.AsSlice(), Port: port},
		&tmptransport.Config{TLSConfig: &tls.Config{Certificates: []tls.Certificate{benchCert}, RootCAs: benchPool, ServerName: "bench"}})
	if err != nil {
		pc.Close()
		return nil, err
	}
	return &tmpClient{s: s, pc: pc}, nil
}

func (c *tmpClient) Get(ctx context.Context, size int, urgent bool) (int64, error) {
	prio := tmptransport.Priority(3)
	if urgent {
		prio = 0
	}
	st, err := c.s.OpenStream(ctx, prio)
	if err != nil {
		return 0, err
	}
	defer st.Close()
	stop := context.AfterFunc(ctx, func() { st.Reset(tmptransport.StreamCancelled) })
	defer stop()
	if _, err := fmt.Fprintf(st, "%d\n", size); err != nil {
		return 0, err
	}
	st.CloseWrite()
	n, err := readPattern(st)
	if err == nil && n != int64(size) {
		err = fmt.Errorf("tmp: got %d of %d bytes", n, size)
	}
	return n, err
}

func (c *tmpClient) Close() { c.s.CloseWithError(tmptransport.NoError, ""); c.pc.Close() }

// ---- HTTP/1.1 and HTTP/2 over TLS/TCP ----

type httpPeer struct {
	key  string
	cc   string // TCP_CONGESTION of the server's sockets
	h2   bool
	pool int
}

func (p *httpPeer) Name() string { return p.key }

// counters reads the server namespace's TCP counters (RetransSegs and
// OutSegs in /proc/net/snmp, per network namespace).
func (p *httpPeer) counters(l *wan.Link) (re, sent uint64, ok bool) {
	l.InB(func() error {
		b, err := os.ReadFile("/proc/thread-self/net/snmp")
		if err != nil {
			return err
		}
		var names []string
		for _, line := range strings.Split(string(b), "\n") {
			if !strings.HasPrefix(line, "Tcp: ") {
				continue
			}
			f := strings.Fields(line)[1:]
			if names == nil {
				names = f
				continue
			}
			for i, n := range names {
				if i >= len(f) {
					break
				}
				v, _ := strconv.ParseUint(f[i], 10, 64)
				switch n {
				case "RetransSegs":
					re = v
				case "OutSegs":
					sent = v
				}
			}
			ok = true
		}
		return nil
	})
	return re, sent, ok
}

func bytesHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.ParseInt(r.URL.Query().Get("n"), 10, 64)
		if err != nil || n < 0 {
			http.Error(w, "bad n", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		writePattern(w, n)
	})
}

func (p *httpPeer) Serve(l *wan.Link) (func(), error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		// Per socket, as the sandbox refuses a per-namespace sysctl;
		// accepted connections inherit the listener's controller.
		if err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptString(int(fd), syscall.IPPROTO_TCP, 13 /* TCP_CONGESTION */, p.cc)
		}); err != nil {
			return err
		}
		return serr
	}}
	var ln net.Listener
	if err := l.InB(func() (err error) {
		ln, err = lc.Listen(context.Background(), "tcp", net.JoinHostPort(l.AddrB.String(), strconv.Itoa(port)))
		return
	}); err != nil {
		return nil, err
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{benchCert}, NextProtos: []string{"http/1.1"}}
	if p.h2 {
		cfg.NextProtos = []string{"h2", "http/1.1"}
	}
	srv := &http.Server{Handler: bytesHandler(), TLSConfig: cfg}
	go srv.Serve(tls.NewListener(ln, cfg))
	return func() { srv.Close() }, nil
}

type httpClient struct {
	c   *http.Client
	url string
	tr  *http.Transport
}

func (p *httpPeer) Dial(ctx context.Context, l *wan.Link) (Client, error) {
	d := &net.Dialer{}
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: benchPool, ServerName: "bench"},
		DialContext: func(ctx context.Context, network, addr string) (c net.Conn, err error) {
			err = l.InA(func() (err error) { c, err = d.DialContext(ctx, network, addr); return })
			return
		},
		ForceAttemptHTTP2:   p.h2,
		MaxIdleConnsPerHost: max(p.pool, 1),
		DisableCompression:  true,
	}
	if p.h2 {
		tr.MaxConnsPerHost = 1
	} else {
		tr.MaxConnsPerHost = p.pool
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	c := &httpClient{c: &http.Client{Transport: tr}, url: "https://" + net.JoinHostPort(l.AddrB.String(), strconv.Itoa(port)), tr: tr}
	// Establish the connection(s) now, so that Get measures a warm client.
	if _, err := c.Get(ctx, 1, false); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *httpClient) Get(ctx context.Context, size int, urgent bool) (int64, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.url+"/bytes?n="+strconv.Itoa(size), nil)
	if urgent {
		req.Header.Set("Priority", "u=0") // RFC 9218, for servers that use it
	}
	resp, err := c.c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	n, err := readPattern(resp.Body)
	if err == nil && n != int64(size) {
		err = fmt.Errorf("got %d of %d bytes", n, size)
	}
	return n, err
}

func (c *httpClient) Close() { c.tr.CloseIdleConnections() }

// ---- HTTP/3 (quic-go) ----

type h3Peer struct{}

func (*h3Peer) Name() string { return "http3" }

func (*h3Peer) Serve(l *wan.Link) (func(), error) {
	pc, err := udpIn(l.InB, l.AddrB.String(), port)
	if err != nil {
		return nil, err
	}
	srv := &http3.Server{Handler: bytesHandler(), TLSConfig: http3.ConfigureTLSConfig(&tls.Config{Certificates: []tls.Certificate{benchCert}})}
	go srv.Serve(pc)
	return func() { srv.Close(); pc.Close() }, nil
}

type h3Client struct {
	httpClient
	t3 *http3.Transport
	pc net.PacketConn
}

func (*h3Peer) Dial(ctx context.Context, l *wan.Link) (Client, error) {
	pc, err := udpIn(l.InA, l.AddrA.String(), 0)
	if err != nil {
		return nil, err
	}
	t3 := &http3.Transport{
		TLSClientConfig: &tls.Config{RootCAs: benchPool, ServerName: "bench"},
		Dial: func(ctx context.Context, addr string, tlsCfg *tls.Config, cfg *quic.Config) (*quic.Conn, error) {
			ua, err := net.ResolveUDPAddr("udp", addr)
			if err != nil {
				return nil, err
			}
			return quic.DialEarly(ctx, pc, ua, tlsCfg, cfg)
		},
	}
	c := &h3Client{httpClient: httpClient{c: &http.Client{Transport: t3}, url: "https://" + net.JoinHostPort(l.AddrB.String(), strconv.Itoa(port))}, t3: t3, pc: pc}
	if _, err := c.Get(ctx, 1, false); err != nil {
		t3.Close()
		pc.Close()
		return nil, err
	}
	return c, nil
}

func (c *h3Client) Close() { c.t3.Close(); c.pc.Close() }

var errNoPeer = errors.New("transportbench: unknown peer")
