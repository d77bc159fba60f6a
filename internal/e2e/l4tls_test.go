package e2e

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestL4TLSTerminatedAtTheFrontEnd: caddy-l4's `tls` handler comes before
// `tmp` on the front-end's listener, so a client speaks TLS to the
// front-end (for redis.test, with a certificate the front-end's Caddy
// loaded), and redis, behind the back-end, gets plaintext over TMP. A
// client that does not speak TLS gets nothing through.
func TestL4TLSTerminatedAtTheFrontEnd(t *testing.T) {
	redis := startRedis(t)
	dir := t.TempDir()
	pool := writeLeaf(t, dir, "redis.test")
	sitePort := freePort(t, "127.0.0.4")
	l := startL4With(t, l4Setup{
		services: map[string]string{"redis": redis},
		tls:      map[string]bool{"redis": true},
		// The site's only job is to load the certificate into the
		// front-end's TLS app, where the layer4 tls handler finds it.
		sites: fmt.Sprintf("\nhttps://redis.test:%d {\n\tbind {frontend_host}\n\ttls %s %s\n\trespond \"certificate holder\"\n}\n",
			sitePort, filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")),
	})
	front := l.listen["redis"]
	var c *tls.Conn
	waitUntil(t, 15*time.Second, "a TLS handshake with the front-end", func() bool {
		var err error
		c, err = tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", front, &tls.Config{ServerName: "redis.test", RootCAs: pool})
		if err != nil {
			t.Log(err)
		}
		return err == nil
	})
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	r := bufio.NewReader(c)
	value := bytes.Repeat([]byte("tls-terminated "), 20_000) // 300 kB
	resp := func(args ...string) string {
		t.Helper()
		var b strings.Builder
		fmt.Fprintf(&b, "*%d\r\n", len(args))
		for _, a := range args {
			fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
		}
		if _, err := c.Write([]byte(b.String())); err != nil {
			t.Fatal(err)
		}
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(line, "$") {
			return strings.TrimSpace(line)
		}
		n, _ := strconv.Atoi(strings.TrimSpace(line[1:]))
		body := make([]byte, n+2)
		if _, err := io.ReadFull(r, body); err != nil {
			t.Fatal(err)
		}
		return string(body[:n])
	}
	if got := resp("PING"); got != "+PONG" {
		t.Fatalf("PING over TLS: %q", got)
	}
	if got := resp("SET", "sealed", string(value)); got != "+OK" {
		t.Fatalf("SET over TLS: %q", got)
	}
	if got := resp("GET", "sealed"); got != string(value) {
		t.Fatalf("GET over TLS: %d bytes back, want %d", len(got), len(value))
	}
	// Redis itself, reached directly, holds what went through: the
	// plaintext arrived behind the back-end.
	if out := redisCLI(t, redis, nil, "STRLEN", "sealed"); strings.TrimSpace(string(out)) != strconv.Itoa(len(value)) {
		t.Fatalf("redis holds %q bytes", out)
	}
	// Plain RESP to the TLS listener: the handshake fails, and nothing
	// reaches redis.
	plain, err := net.DialTimeout("tcp", front, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	plain.SetDeadline(time.Now().Add(10 * time.Second))
	plain.Write([]byte("*3\r\n$3\r\nSET\r\n$5\r\nplain\r\n$1\r\nx\r\n"))
	buf := make([]byte, 64)
	n, _ := plain.Read(buf)
	if bytes.Contains(buf[:n], []byte("+OK")) {
		t.Fatal("a plaintext client reached redis through the TLS listener")
	}
	if out := redisCLI(t, redis, nil, "EXISTS", "plain"); strings.TrimSpace(string(out)) != "0" {
		t.Fatalf("a plaintext client's SET reached redis: EXISTS %q", out)
	}
}

// writeLeaf writes a self-signed CA's certificate for name, and its key,
// to dir/cert.pem and dir/key.pem, and returns a pool with the CA.
func writeLeaf(t *testing.T, dir, name string) *x509.CertPool {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "e2e test CA"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	certPEM := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})...)
	if err := os.WriteFile(filepath.Join(dir, "cert.pem"), certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	return pool
}
