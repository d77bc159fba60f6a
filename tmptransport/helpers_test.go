package tmptransport

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"
)

// testPKI is a throwaway CA with a server and a client certificate, like the
// ones Caddy's internal PKI issues.
type testPKI struct {
	pool           *x509.CertPool
	server, client tls.Certificate
	caKey          *ecdsa.PrivateKey
	ca             *x509.Certificate
}

var (
	pkiOnce sync.Once
	pki     *testPKI
)

func getPKI(t testing.TB) *testPKI {
	pkiOnce.Do(func() { pki = newTestPKI(t, "tmp test CA") })
	return pki
}

func newTestPKI(t testing.TB, name string) *testPKI {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	p := &testPKI{pool: x509.NewCertPool(), caKey: key, ca: ca}
	p.pool.AddCert(ca)
	p.server = p.issue(t, "backend.test", x509.ExtKeyUsageServerAuth)
	p.client = p.issue(t, "frontend.test", x509.ExtKeyUsageClientAuth)
	return p
}

func (p *testPKI) issue(t testing.TB, cn string, usage x509.ExtKeyUsage) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		DNSNames:     []string{cn},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func (p *testPKI) serverConfig() *Config {
	return &Config{TLSConfig: &tls.Config{
		Certificates: []tls.Certificate{p.server},
		ClientCAs:    p.pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
	}}
}

func (p *testPKI) clientConfig() *Config {
	return &Config{TLSConfig: &tls.Config{
		Certificates: []tls.Certificate{p.client},
		RootCAs:      p.pool,
		ServerName:   "backend.test",
	}}
}

// pair starts a listener on loopback and dials it.
func pair(t testing.TB, scfg, ccfg *Config) (*Listener, *Session, *Session) {
	t.Helper()
	l, err := Listen("127.0.0.1:0", scfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, l.Addr().String(), ccfg)
	if err != nil {
		l.Close()
		t.Fatal(err)
	}
	s, err := l.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.CloseWithError(NoError, "")
		l.Close()
	})
	return l, c, s
}

// serveStreams accepts streams on s until ctx ends and runs serve for each
// in a goroutine of its own.
func serveStreams(ctx context.Context, s *Session, serve func(*Stream)) {
	go func() {
		for {
			st, err := s.AcceptStream(ctx)
			if err != nil {
				return
			}
			go serve(st)
		}
	}()
}

// echoServer accepts streams on s and echoes each one back until EOF.
func echoServer(ctx context.Context, s *Session) {
	for {
		st, err := s.AcceptStream(ctx)
		if err != nil {
			return
		}
		go func() {
			buf := make([]byte, 32<<10)
			for {
				n, err := st.Read(buf)
				if n > 0 {
					if _, werr := st.Write(buf[:n]); werr != nil {
						st.Reset(StreamCancelled)
						return
					}
				}
				if err != nil {
					st.CloseWrite()
					return
				}
			}
		}()
	}
}

// impairedPair is pair over PacketConns that the given functions wrap (for
// example in a lossyConn); nil leaves a side unimpaired.
func impairedPair(t testing.TB, scfg, ccfg *Config, wrapServer, wrapClient func(net.PacketConn) net.PacketConn) (c, s *Session) {
	t.Helper()
	spc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cpc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var sconn, cconn net.PacketConn = spc, cpc
	if wrapServer != nil {
		sconn = wrapServer(spc)
	}
	if wrapClient != nil {
		cconn = wrapClient(cpc)
	}
	l, err := NewListener(sconn, scfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err = DialConn(ctx, cconn, spc.LocalAddr(), ccfg)
	if err != nil {
		t.Fatal(err)
	}
	s, err = l.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.CloseWithError(NoError, "")
		l.Close()
		spc.Close()
		cpc.Close()
	})
	return c, s
}

// basePacketPair is pair with path MTU discovery off at both ends: packets
// stay at the base size, as on a 1500-byte path, where loopback would grow
// them to 16 kB and spread per-packet costs over fewer packets.
func basePacketPair(t testing.TB) (c, s *Session) {
	t.Helper()
	p := getPKI(t)
	sc, cc := p.serverConfig(), p.clientConfig()
	sc.NoPathMTUDiscovery, cc.NoPathMTUDiscovery = true, true
	_, c, s = pair(t, sc, cc)
	return c, s
}
