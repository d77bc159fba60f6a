// Package fleetca is the fleet CA: it signs node certificates, for TMP
// links and for the control plane, and nothing else.
package fleetca

import (
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddypki"

	"github.com/conductor-edge/conductor/internal/nodeid"
)

// The fleet CA signs node certificates and nothing else. It is a CA of
// caddypki's own kind (root and intermediate kept in Caddy's storage, so
// every node that shares storage shares the fleet), but it is not a CA of
// the pki app: the pki app's CAs sign `tls internal` site certificates, and
// its Start installs their roots in the system trust store unless told not
// to. A node certificate must never be confused with a site certificate,
// and a node must not change the trust store of the machine it runs on.
const fleetIntermediateLifetime = 30 * 24 * time.Hour

// Issuer issues node certificates from a CA.
type Issuer struct {
	ctx  caddy.Context
	mu   sync.Mutex
	ca   *caddypki.CA
	own  bool // the fleet's own CA (else a pki app CA, which the pki app renews)
	make func() (*caddypki.CA, error)
}

// New loads (or creates) the CA of fleet, kept in Caddy's storage. With
// caID, it is that CA of Caddy's pki app instead.
func New(ctx caddy.Context, caID, fleet string) (*Issuer, error) {
	f := &Issuer{ctx: ctx}
	if caID != "" {
		app, err := ctx.App("pki")
		if err != nil {
			return nil, err
		}
		ca, err := app.(*caddypki.PKI).GetCA(ctx, caID)
		if err != nil {
			return nil, err
		}
		if ca.InstallTrust == nil {
			// Unset means "install" to the pki app, whose Start would put
			// the root in the system trust store because a TMP link
			// needed a certificate (`auto_https off` and
			// `skip_install_trust` do not reach a CA loaded this way).
			// Only an explicit `install_trust true` does that.
			no := false
			ca.InstallTrust = &no
		}
		f.ca = ca
		return f, nil
	}
	f.own = true
	f.make = func() (*caddypki.CA, error) {
		no := false
		ca := &caddypki.CA{
			Name:                   "Conductor fleet " + fleet,
			RootCommonName:         "Conductor Fleet " + fleet + " Root",
			IntermediateCommonName: "Conductor Fleet " + fleet + " Intermediate",
			IntermediateLifetime:   caddy.Duration(fleetIntermediateLifetime),
			InstallTrust:           &no,
		}
		// Nodes and managers that share storage may start together: the
		// lock keeps them from generating two roots (caddypki does not
		// lock; its CAs are made by one process).
		lock := "conductor-fleet-ca-" + fleet
		if err := ctx.Storage().Lock(ctx, lock); err != nil {
			return nil, fmt.Errorf("fleet CA: locking storage: %w", err)
		}
		defer ctx.Storage().Unlock(ctx, lock)
		if err := ca.Provision(ctx, ID(fleet), ctx.Logger()); err != nil {
			return nil, fmt.Errorf("fleet CA: %w", err)
		}
		return ca, nil
	}
	var err error
	f.ca, err = f.make()
	return f, err
}

// ID is the storage ID of a fleet's CA (pki/authorities/<id>).
func ID(fleet string) string { return "conductor-" + fleet }

// Issue signs a certificate for pub that names id (nodeid.Template) and
// returns the chain, leaf first, and the fleet's root, in DER. A node
// certificate never outlives the intermediate that signed it.
func (f *Issuer) Issue(pub crypto.PublicKey, id nodeid.ID, lifetime time.Duration) ([][]byte, []byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.renewIntermediate(); err != nil {
		return nil, nil, err
	}
	chain := f.ca.IntermediateCertificateChain()
	if len(chain) == 0 {
		return nil, nil, errors.New("the CA has no intermediate certificate")
	}
	der, err := nodeid.Sign(pub, id, lifetime, chain, f.ca.IntermediateKey())
	return der, f.ca.RootCertificate().Raw, err
}

// Root is the fleet's root certificate.
func (f *Issuer) Root() *x509.Certificate {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ca.RootCertificate()
}

// Roots is a pool holding the fleet's root.
func (f *Issuer) Roots() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(f.Root())
	return pool
}

// renewIntermediate replaces the fleet's own intermediate when a fifth of
// its lifetime is left: the stored one is removed and the CA provisioned
// anew, which generates the next (caddypki renews only the pki app's CAs).
// Nodes that race here each make one; all chain to the same root.
func (f *Issuer) renewIntermediate() error {
	if !f.own {
		return nil
	}
	inter := f.ca.IntermediateCertificateChain()[0]
	if time.Until(inter.NotAfter) > inter.NotAfter.Sub(inter.NotBefore)/5 {
		return nil
	}
	prefix := "pki/authorities/" + f.ca.ID + "/"
	st := f.ctx.Storage()
	for _, k := range []string{"intermediate.crt", "intermediate.key"} {
		if err := st.Delete(f.ctx, prefix+k); err != nil {
			return fmt.Errorf("fleet CA: removing the old intermediate: %w", err)
		}
	}
	ca, err := f.make()
	if err != nil {
		return err
	}
	f.ca = ca
	return nil
}
