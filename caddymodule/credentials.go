package caddymodule

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/conductor-edge/conductor/caddymodule/internal/fleetca"
	"github.com/conductor-edge/conductor/internal/nodeid"
	"github.com/conductor-edge/conductor/tmptransport"
)

// TMPServerName is the DNS name every node's TMP certificate carries and
// every front-end verifies, besides the node's role: trust comes from the
// fleet CA and the role, not from host names, because back-ends are
// addressed by IP as often as by name.
const TMPServerName = nodeid.ServerName

// The defaults of a node's credentials.
const (
	defaultFleet        = "conductor"
	defaultCertLifetime = 24 * time.Hour
)

// TLSConfig holds the credentials of TMP links. Authentication is always
// mutual, and each end checks the other's role: a back-end accepts only
// front-ends of its fleet, a front-end dials only back-ends.
type TLSConfig struct {
	// CertFile and KeyFile are this node's certificate chain and key (PEM).
	// Both set, or neither. They are read again whenever they change on
	// disk, so that an external rotation needs no restart.
	CertFile string `json:"cert_file,omitempty"`
	KeyFile  string `json:"key_file,omitempty"`
	// CAFile is the PEM bundle of CAs whose certificates this node trusts
	// (required with CertFile; added to the fleet CA otherwise).
	CAFile string `json:"ca_file,omitempty"`
	// CA is the ID of a CA of Caddy's pki app that issues this node's
	// certificate. Empty (the default): the fleet's own CA, kept in Caddy's
	// storage under pki/authorities/conductor-<fleet>, which signs nothing
	// but node certificates and is never installed in any trust store.
	// Naming a pki CA ("local" included) trusts every certificate it
	// signs, site certificates too: only for closed networks.
	CA string `json:"ca,omitempty"`
	// Fleet names the set of nodes that trust each other (default
	// "conductor"). Node certificates carry the URI SAN
	// conductor://<fleet>/<role>/<name>.
	Fleet string `json:"fleet,omitempty"`
	// CertLifetime is the lifetime of the node certificates this node
	// issues itself (default 24h); they are renewed when a third of it is
	// left.
	CertLifetime caddy.Duration `json:"cert_lifetime,omitempty"`
	// ServerName is the DNS name verified in a back-end's certificate
	// (default "conductor-tmp").
	ServerName string `json:"server_name,omitempty"`
}

// peerRole returns the role a certificate gives its holder on a TMP link
// of fleet, or "" if it is no TMP node certificate of that fleet (a URI of
// the fleet, a TMP role, and a node name).
func peerRole(cert *x509.Certificate, fleet string) string {
	id, ok := nodeid.FromCert(cert, fleet)
	if !ok || (id.Role != "frontend" && id.Role != "backend" && id.Role != "both") {
		return ""
	}
	return id.Role
}

// credentials are a node's TMP identity: its current certificate, the CAs
// it trusts, and the loop that renews them. Handshakes read the current
// values (GetCertificate, GetClientCertificate, GetConfigForClient), so a
// renewal, a rotated file and a `caddy reload` apply to the next handshake
// and leave established sessions alone.
type credentials struct {
	fleet, role, name, serverName string
	cert                          atomic.Pointer[tls.Certificate]
	roots                         atomic.Pointer[x509.CertPool]
	load                          func() (*tls.Certificate, *x509.CertPool, error)
	lifetime                      time.Duration
	fleetIssued                   bool // this node issues its own certificates
	log                           *zap.Logger

	stop context.CancelFunc
	wg   sync.WaitGroup
}

// newCredentials sets up a node's credentials and issues or loads its first
// certificate.
func (t *TLSConfig) newCredentials(ctx caddy.Context, name, role string, log *zap.Logger) (*credentials, error) {
	if (t.CertFile == "") != (t.KeyFile == "") {
		return nil, errors.New("cert_file and key_file go together")
	}
	if t.CertFile != "" && t.CAFile == "" {
		return nil, errors.New("ca_file is required with cert_file: it says which front-ends and back-ends to trust")
	}
	c := &credentials{fleet: t.Fleet, role: role, name: name, serverName: t.ServerName, lifetime: time.Duration(t.CertLifetime), log: log}
	if c.fleet == "" {
		c.fleet = defaultFleet
	}
	if c.serverName == "" {
		c.serverName = TMPServerName
	}
	if c.lifetime <= 0 {
		c.lifetime = defaultCertLifetime
	}
	if c.lifetime < time.Minute {
		return nil, fmt.Errorf("cert_lifetime %v: at least 1m", c.lifetime)
	}
	if t.CertFile != "" {
		c.load = t.loadFiles
	} else {
		issuer, err := fleetca.New(ctx, t.CA, c.fleet)
		if err != nil {
			return nil, err
		}
		c.fleetIssued = true
		c.load = func() (*tls.Certificate, *x509.CertPool, error) {
			cert, pool, err := c.issue(issuer)
			if err == nil && t.CAFile != "" {
				err = appendCAFile(pool, t.CAFile)
			}
			return cert, pool, err
		}
	}
	cert, pool, err := c.load()
	if err != nil {
		return nil, err
	}
	if r := peerRole(cert.Leaf, c.fleet); r == "" {
		log.Warn("this node's TMP certificate carries no conductor://"+c.fleet+"/<role>/<name> URI: peers that check roles will refuse it",
			zap.String("subject", cert.Leaf.Subject.String()))
	}
	c.cert.Store(cert)
	c.roots.Store(pool)
	return c, nil
}

// loadFiles reads the operator's certificate, key and CAs.
func (t *TLSConfig) loadFiles() (*tls.Certificate, *x509.CertPool, error) {
	cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
	if err != nil {
		return nil, nil, err
	}
	pool := x509.NewCertPool()
	if err := appendCAFile(pool, t.CAFile); err != nil {
		return nil, nil, err
	}
	return &cert, pool, nil
}

func appendCAFile(pool *x509.CertPool, path string) error {
	pem, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if !pool.AppendCertsFromPEM(pem) {
		return fmt.Errorf("ca_file %s holds no PEM certificate", path)
	}
	return nil
}

// start runs the renewal loop until stop.
func (c *credentials) start() {
	ctx, cancel := context.WithCancel(context.Background())
	c.stop = cancel
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		every := min(max(c.lifetime/12, time.Second), time.Minute)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				c.maybeRenew(time.Now())
			}
		}
	}()
}

func (c *credentials) close() {
	if c.stop != nil {
		c.stop()
		c.wg.Wait()
	}
}

// maybeRenew takes a new certificate when a third of the current one's
// lifetime is left (one this node issues), or when the files it came from
// changed (the operator's).
func (c *credentials) maybeRenew(now time.Time) {
	cur := c.cert.Load()
	left := cur.Leaf.NotAfter.Sub(now)
	if c.fleetIssued && left > cur.Leaf.NotAfter.Sub(cur.Leaf.NotBefore)/3 {
		return
	}
	cert, pool, err := c.load()
	if err != nil {
		c.log.Error("renewing the TMP node certificate", zap.Error(err), zap.Duration("time_left", left))
		return
	}
	c.roots.Store(pool)
	if bytes.Equal(cert.Leaf.Raw, cur.Leaf.Raw) {
		return
	}
	c.cert.Store(cert)
	c.log.Info("TMP node certificate renewed", zap.Time("not_after", cert.Leaf.NotAfter), zap.String("serial", cert.Leaf.SerialNumber.Text(16)))
}

// checkPeer accepts a verified peer only if its certificate makes it a
// node of this fleet in one of the roles.
func (c *credentials) checkPeer(cs tls.ConnectionState, roles ...string) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("conductor: peer sent no certificate")
	}
	leaf := cs.PeerCertificates[0]
	role := peerRole(leaf, c.fleet)
	if !slices.Contains(roles, role) {
		uris := make([]string, len(leaf.URIs))
		for i, u := range leaf.URIs {
			uris[i] = u.String()
		}
		return fmt.Errorf("conductor: certificate of %q is not a %s of fleet %q (URI SANs %v)", leaf.Subject.CommonName, strings.Join(roles, " or "), c.fleet, uris)
	}
	return nil
}

// serverTLS is the configuration of one handshake on a back-end's listener:
// the current certificate and CAs, client certificates required and
// verified, and only front-ends admitted.
func (c *credentials) serverTLS() *tls.Config {
	cert := c.cert.Load()
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		NextProtos:   []string{tmptransport.ALPN},
		Certificates: []tls.Certificate{*cert},
		ClientCAs:    c.roots.Load(),
		ClientAuth:   tls.RequireAndVerifyClientCert,
		VerifyConnection: func(cs tls.ConnectionState) error {
			return c.checkPeer(cs, "frontend", "both")
		},
	}
}

// verifyBackend checks a back-end's certificate chain against the CAs
// current at this handshake, and that it is a back-end of the fleet.
func (c *credentials) verifyBackend(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("conductor: back-end sent no certificate")
	}
	inter := x509.NewCertPool()
	for _, ic := range cs.PeerCertificates[1:] {
		inter.AddCert(ic)
	}
	if _, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{
		Roots:         c.roots.Load(),
		Intermediates: inter,
		DNSName:       c.serverName,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}); err != nil {
		return fmt.Errorf("conductor: back-end certificate: %w", err)
	}
	return c.checkPeer(cs, "backend", "both")
}

// credsRef is where a shared listener or upstream finds the credentials of
// the config that uses it now. Sessions and listeners outlive a config
// (they are shared across reloads); each new config stores its own
// credentials here, and the next handshake uses them.
type credsRef struct{ p atomic.Pointer[credentials] }

// serverTLS is a listener's TLS configuration: each handshake gets the
// current credentials' configuration.
func (r *credsRef) serverTLS() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		NextProtos: []string{tmptransport.ALPN},
		ClientAuth: tls.RequireAndVerifyClientCert,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return r.p.Load().serverTLS(), nil
		},
	}
}

// clientTLS is a front-end's dialing configuration. The chain is verified
// in VerifyConnection against the CAs current at that handshake (crypto/tls
// reads RootCAs from the config, which is fixed for the dialer's life), so
// InsecureSkipVerify only hands the verification to verifyBackend; it is
// never skipped.
func (r *credsRef) clientTLS() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		NextProtos: []string{tmptransport.ALPN},
		ServerName: r.p.Load().serverName,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return r.p.Load().cert.Load(), nil
		},
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			return r.p.Load().verifyBackend(cs)
		},
	}
}

// issue has the fleet CA sign a new key for this node, and returns the
// certificate with the fleet's root.
func (c *credentials) issue(ca *fleetca.Issuer) (*tls.Certificate, *x509.CertPool, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	id := nodeid.ID{Fleet: c.fleet, Role: c.role, Name: c.name}
	if c.serverName != nodeid.ServerName {
		id.Hosts = []string{c.serverName}
	}
	chain, _, err := ca.Issue(&key.PublicKey, id, c.lifetime)
	if err != nil {
		return nil, nil, err
	}
	cert := &tls.Certificate{Certificate: chain, PrivateKey: key}
	if cert.Leaf, err = x509.ParseCertificate(chain[0]); err != nil {
		return nil, nil, err
	}
	return cert, ca.Roots(), nil
}

func defaultNodeName() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "conductor-node"
	}
	return h
}
