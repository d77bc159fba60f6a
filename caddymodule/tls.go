package caddymodule

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"os"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddypki"
)

// TMPServerName is the name every node's TMP certificate carries and every
// front-end verifies: trust comes from the CA, not from host names, because
// back-ends are addressed by IP as often as by name.
const TMPServerName = "conductor-tmp"

// TLSConfig holds the credentials of TMP links. Authentication is always
// mutual: a back-end accepts only front-ends whose certificate its CA signed.
type TLSConfig struct {
	// CertFile and KeyFile are this node's certificate chain and key (PEM).
	// Both set, or neither.
	CertFile string `json:"cert_file,omitempty"`
	KeyFile  string `json:"key_file,omitempty"`
	// CAFile is the PEM bundle of CAs whose certificates this node trusts.
	CAFile string `json:"ca_file,omitempty"`
	// CA is the ID of the Caddy PKI app's CA that issues this node's
	// certificate when no files are given (default "local").
	CA string `json:"ca,omitempty"`
	// ServerName is the name verified in a back-end's certificate (default
	// "conductor-tmp").
	ServerName string `json:"server_name,omitempty"`
}

func (t *TLSConfig) build(ctx caddy.Context, node string) (server, client *tls.Config, err error) {
	if (t.CertFile == "") != (t.KeyFile == "") {
		return nil, nil, errors.New("cert_file and key_file go together")
	}
	serverName := t.ServerName
	if serverName == "" {
		serverName = TMPServerName
	}
	var cert tls.Certificate
	pool := x509.NewCertPool()
	if t.CertFile != "" {
		cert, err = tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, nil, err
		}
		if t.CAFile == "" {
			return nil, nil, errors.New("ca_file is required with cert_file: it says which front-ends and back-ends to trust")
		}
	} else {
		cert, pool, err = t.issueFromPKI(ctx, node, serverName)
		if err != nil {
			return nil, nil, err
		}
	}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, nil, err
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, nil, fmt.Errorf("ca_file %s holds no PEM certificate", t.CAFile)
		}
	}
	server = &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS13,
	}
	client = &tls.Config{
		Certificates: []tls.Certificate{cert},
		RootCAs:      pool,
		ServerName:   serverName,
		MinVersion:   tls.VersionTLS13,
	}
	return server, client, nil
}

// issueFromPKI signs a short-lived node certificate, valid for both ends of
// a TMP link, with the intermediate of Caddy's PKI app.
func (t *TLSConfig) issueFromPKI(ctx caddy.Context, node, serverName string) (tls.Certificate, *x509.CertPool, error) {
	appIface, err := ctx.App("pki")
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	caID := t.CA
	if caID == "" {
		caID = caddypki.DefaultCAID
	}
	ca, err := appIface.(*caddypki.PKI).GetCA(ctx, caID)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	chain := ca.IntermediateCertificateChain()
	if len(chain) == 0 {
		return tls.Certificate{}, nil, fmt.Errorf("CA %q has no intermediate certificate", caID)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: node, OrganizationalUnit: []string{"conductor"}},
		DNSNames:     []string{serverName, node},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(7 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, chain[0], &key.PublicKey, ca.IntermediateKey())
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	cert := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	for _, c := range chain {
		cert.Certificate = append(cert.Certificate, c.Raw)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.RootCertificate())
	return cert, pool, nil
}

func defaultNodeName() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "conductor-node"
	}
	return h
}
