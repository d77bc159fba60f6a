// Package enrol is a node's side of enrolment with the shifting manager
// (shifting/enroll.go): it exchanges a single-use join token for a node
// certificate, keeps the certificate and its key on disk so that a
// restart needs no new token, and renews the certificate with itself
// before it expires. The key never leaves the node: the manager signs a
// certificate request.
package enrol

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/conductor-edge/conductor/internal/nodeid"
)

// Request is a certificate request: POST /v1/enroll (with the join token
// as a bearer secret) or POST /v1/renew (with the current certificate).
type Request struct {
	CSR string `json:"csr"` // PEM CERTIFICATE REQUEST
}

// Answer is the manager's answer: the node's chain and the fleet's root.
type Answer struct {
	Certificate string `json:"certificate"` // PEM, leaf first
	CA          string `json:"ca"`          // PEM
}

// Config says who the node is and where its manager is.
type Config struct {
	// Dir keeps node.pem (the certificate chain and its key, in one file
	// so that one rename replaces both) and fleet-ca.crt.
	Dir string
	// Managers are the managers' base URLs (https://); the first that
	// answers (and leads) enrols the node.
	Managers []string
	// Roots verify the managers' server certificates (nil: the system's).
	Roots *x509.CertPool
	// JoinToken is used when no valid certificate for this identity is
	// stored, and never again after it worked.
	JoinToken string
	// Fleet, Name and Role are the identity the node expects: a stored
	// certificate for another one is not used.
	Fleet, Name, Role string
	Logger            *zap.Logger
}

// CheckURL accepts a manager URL: https:// only. A node proves who it is
// with TLS, and its join token is a secret.
func CheckURL(raw string) error {
	if !strings.HasPrefix(strings.ToLower(raw), "https://") {
		return fmt.Errorf("%s: want an https:// URL (the manager is reached over TLS only: the join token is a secret, and the node's certificate is its identity)", raw)
	}
	return nil
}

// Identity is a node's enrolled certificate.
type Identity struct {
	cfg   Config
	cert  atomic.Pointer[tls.Certificate]
	fleet atomic.Pointer[x509.CertPool] // the fleet's root, as the manager gave it
}

// Load returns the node's stored identity, or enrols it with the join
// token. Without either it fails, saying what to set.
func Load(ctx context.Context, cfg Config) (*Identity, error) {
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Fleet == "" {
		cfg.Fleet = "conductor"
	}
	for _, m := range cfg.Managers {
		if err := CheckURL(m); err != nil {
			return nil, err
		}
	}
	id := &Identity{cfg: cfg}
	cert, err := tls.LoadX509KeyPair(id.path("node.pem"), id.path("node.pem"))
	if err == nil {
		why := id.unusable(&cert)
		if why == "" {
			id.cert.Store(&cert)
			id.loadFleetRoot()
			return id, nil
		}
		if cfg.JoinToken == "" {
			return nil, fmt.Errorf("the stored node certificate (%s) %s: set a new join_token (an admin mints one: POST /v1/join-tokens)", id.path("node.pem"), why)
		}
		cfg.Logger.Warn("the stored node certificate "+why+"; enrolling again with the join token", zap.String("file", id.path("node.pem")))
	} else if cfg.JoinToken == "" {
		return nil, fmt.Errorf("node %s is not enrolled: set join_token (an admin mints one for this node: POST /v1/join-tokens), or place its certificate in %s", cfg.Name, cfg.Dir)
	}
	if err := id.request(ctx, "/v1/enroll", cfg.JoinToken); err != nil {
		return nil, fmt.Errorf("enrolling node %s: %w", cfg.Name, err)
	}
	cfg.Logger.Info("node enrolled", zap.String("node", cfg.Name), zap.String("role", cfg.Role), zap.Time("not_after", id.cert.Load().Leaf.NotAfter))
	return id, nil
}

// unusable says why a stored certificate cannot serve, or "".
func (id *Identity) unusable(c *tls.Certificate) string {
	if time.Now().After(c.Leaf.NotAfter) {
		return "expired at " + c.Leaf.NotAfter.Format(time.RFC3339)
	}
	got, ok := nodeid.FromCert(c.Leaf, id.cfg.Fleet)
	if !ok || got.Name != id.cfg.Name || got.Role != id.cfg.Role {
		return fmt.Sprintf("names another node (%v, want %s %s of fleet %s)", c.Leaf.URIs, id.cfg.Role, id.cfg.Name, id.cfg.Fleet)
	}
	return ""
}

func (id *Identity) path(name string) string { return filepath.Join(id.cfg.Dir, name) }

// loadFleetRoot reads the fleet's root that the manager gave.
func (id *Identity) loadFleetRoot() {
	pool := x509.NewCertPool()
	if pem, err := os.ReadFile(id.path("fleet-ca.crt")); err == nil {
		pool.AppendCertsFromPEM(pem)
	}
	id.fleet.Store(pool)
}

// FleetRoots holds the fleet's root: peers' certificates chain to it.
func (id *Identity) FleetRoots() *x509.CertPool { return id.fleet.Load() }

// Certificate is the current certificate.
func (id *Identity) Certificate() *tls.Certificate { return id.cert.Load() }

// TLSConfig is a client configuration that presents the current
// certificate (a renewal applies to the next connection) and verifies the
// manager with the configured roots.
func (id *Identity) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		RootCAs:    id.cfg.Roots,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			if c := id.cert.Load(); c != nil {
				return c, nil
			}
			return &tls.Certificate{}, nil // not enrolled yet: none
		},
	}
}

// MaybeRenew renews the certificate when a third of its lifetime is left.
// Cheap to call often: it does nothing until then.
func (id *Identity) MaybeRenew(ctx context.Context) error {
	leaf := id.cert.Load().Leaf
	if time.Until(leaf.NotAfter) > leaf.NotAfter.Sub(leaf.NotBefore)/3 {
		return nil
	}
	if err := id.request(ctx, "/v1/renew", ""); err != nil {
		return fmt.Errorf("renewing the node certificate (it expires at %s): %w", leaf.NotAfter.Format(time.RFC3339), err)
	}
	id.cfg.Logger.Info("node certificate renewed", zap.Time("not_after", id.cert.Load().Leaf.NotAfter))
	return nil
}

// request sends a new key's certificate request to path, with the join
// token (enrolment) or the current certificate (renewal), and stores the
// answer.
func (id *Identity) request(ctx context.Context, path, joinToken string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		return err
	}
	body, _ := json.Marshal(Request{CSR: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))})
	client := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{TLSClientConfig: id.TLSConfig()}}
	defer client.CloseIdleConnections()
	var last error
	for _, m := range id.cfg.Managers {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(m, "/")+path, bytes.NewReader(body))
		if err != nil {
			return err
		}
		if joinToken != "" {
			req.Header.Set("Authorization", "Bearer "+joinToken)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			last = err
			continue
		}
		out, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if resp.StatusCode == http.StatusServiceUnavailable {
			last = fmt.Errorf("%s: %s", m, strings.TrimSpace(string(out)))
			continue // not the leader
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s: %s", m, resp.Status, strings.TrimSpace(string(out)))
		}
		var ans Answer
		if err := json.Unmarshal(out, &ans); err != nil {
			return fmt.Errorf("%s: %v", m, err)
		}
		return id.store(key, ans)
	}
	if last == nil {
		last = errors.New("no manager configured")
	}
	return last
}

// store checks the answer, writes it to disk and makes it current.
func (id *Identity) store(key *ecdsa.PrivateKey, ans Answer) error {
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
	cert, err := tls.X509KeyPair([]byte(ans.Certificate), keyPEM)
	if err != nil {
		return fmt.Errorf("the manager's certificate: %v", err)
	}
	if why := id.unusable(&cert); why != "" {
		return fmt.Errorf("the manager issued a certificate that %s", why)
	}
	if err := os.MkdirAll(id.cfg.Dir, 0o700); err != nil {
		return err
	}
	if err := writeFile(id.path("fleet-ca.crt"), []byte(ans.CA), 0o644); err != nil {
		return err
	}
	if err := writeFile(id.path("node.pem"), append([]byte(ans.Certificate), keyPEM...), 0o600); err != nil {
		return err
	}
	id.cert.Store(&cert)
	id.loadFleetRoot()
	return nil
}

// writeFile replaces a file whole: a crash leaves the old or the new one.
func writeFile(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// LoadRoots is the system's roots plus the PEM certificates in path: what
// a node trusts for the manager's certificate (ca_file).
func LoadRoots(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return pool, nil
}
