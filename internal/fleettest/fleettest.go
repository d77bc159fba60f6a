// Package fleettest is a fleet CA for tests: a real root that signs node
// certificates the way the Caddy module's fleet CA does (nodeid.Sign), and
// writes a node's identity where internal/enrol looks for it.
package fleettest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/conductor-edge/conductor/internal/nodeid"
)

// CA is a test fleet CA.
type CA struct {
	Cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// NewCA makes a root named name.
func NewCA(t testing.TB, name string) *CA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &CA{cert, key}
}

// Issue implements shifting.Issuer.
func (c *CA) Issue(pub crypto.PublicKey, id nodeid.ID, life time.Duration) ([][]byte, []byte, error) {
	chain, err := nodeid.Sign(pub, id, life, []*x509.Certificate{c.Cert}, c.key)
	return chain, c.Cert.Raw, err
}

// Pool holds the root.
func (c *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(c.Cert)
	return p
}

// WriteIdentity issues a certificate for id and writes it, with its key,
// as node.pem in dir, and the root as fleet-ca.crt: a node enrolled before.
func (c *CA) WriteIdentity(t testing.TB, dir string, id nodeid.ID) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	chain, _, err := c.Issue(&key.PublicKey, id, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	var out []byte
	for _, der := range chain {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	out = append(out, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})...)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "node.pem"), out, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "fleet-ca.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Cert.Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
}
