package agent

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/conductor-edge/conductor/caddymodule/internal/fleetca"
	"github.com/conductor-edge/conductor/internal/nodeid"
	"github.com/conductor-edge/conductor/shifting"
)

// OperatorKey is one operator's credential: a name for the logs, a role,
// and the key, given as itself (at least 16 characters; use a placeholder
// such as {env.CONDUCTOR_ADMIN_KEY} to keep it out of the file) or as
// sha256:<hex> of it. Rotating a key is a config reload.
type OperatorKey struct {
	Name string `json:"name"`
	Role string `json:"role"`
	Key  string `json:"key"`
}

// minOperatorKey is the shortest key accepted: a key is a password that
// nobody types, so a short one is a mistake.
const minOperatorKey = 16

// operators checks and hashes the operators' keys.
func (a *ManagerApp) operators() ([]shifting.Operator, error) {
	if len(a.Operators) == 0 {
		return nil, errors.New("conductor_manager: no operator: set operator <name> admin <key> (and operator <name> read <key> for the status page); nodes enrol with join tokens that an admin mints")
	}
	out := make([]shifting.Operator, 0, len(a.Operators))
	seen := map[[32]byte]string{}
	repl := caddy.NewReplacer() // {env.NAME} keeps a key out of the config
	for _, o := range a.Operators {
		o.Key = repl.ReplaceKnown(o.Key, "")
		if o.Role != shifting.RoleRead && o.Role != shifting.RoleAdmin {
			return nil, fmt.Errorf("conductor_manager: operator %s: role %q, want read or admin", o.Name, o.Role)
		}
		op := shifting.Operator{Name: o.Name, Role: o.Role}
		if h, ok := strings.CutPrefix(o.Key, "sha256:"); ok {
			b, err := hex.DecodeString(h)
			if err != nil || len(b) != 32 {
				return nil, fmt.Errorf("conductor_manager: operator %s: sha256: wants 64 hex digits", o.Name)
			}
			copy(op.KeyHash[:], b)
		} else {
			if len(o.Key) < minOperatorKey {
				return nil, fmt.Errorf("conductor_manager: operator %s: the key is empty or shorter than %d characters; set a long random one (openssl rand -hex 32)", o.Name, minOperatorKey)
			}
			op.KeyHash = shifting.HashKey(o.Key)
		}
		if other, dup := seen[op.KeyHash]; dup {
			return nil, fmt.Errorf("conductor_manager: operators %s and %s share a key", other, o.Name)
		}
		seen[op.KeyHash] = o.Name
		out = append(out, op)
	}
	return out, nil
}

// rootFile is where the manager leaves the fleet's root for operators to
// give to nodes (their ca_file, when the manager's certificate is the
// fleet's).
func (a *ManagerApp) rootFile() string { return filepath.Join(a.StateDir, "fleet-ca.crt") }

// serverCert is the API's certificate: the operator's files, or one the
// fleet CA issues (role "manager") and renews when a third of it is left.
type serverCert struct {
	mu    sync.Mutex
	cur   *tls.Certificate
	renew func() (*tls.Certificate, error)
}

func (a *ManagerApp) serverCert() (*serverCert, error) {
	if err := os.MkdirAll(a.StateDir, 0o700); err != nil {
		return nil, err
	}
	if err := a.writeRoot(); err != nil {
		return nil, err
	}
	sc := &serverCert{}
	if a.TLSCert != "" {
		c, err := tls.LoadX509KeyPair(a.TLSCert, a.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("tls: %v", err)
		}
		sc.cur = &c
		return sc, nil
	}
	hosts := append([]string(nil), a.ServerNames...)
	if h, _, err := net.SplitHostPort(a.Listen); err == nil && h != "" {
		if ip := net.ParseIP(h); ip == nil || !ip.IsUnspecified() {
			hosts = append(hosts, h)
		}
	}
	if len(hosts) == 0 {
		return nil, fmt.Errorf("listen %s names no host for the manager's certificate: set server_names <host...>, or tls <cert_file> <key_file>", a.Listen)
	}
	id := nodeid.ID{Fleet: a.Fleet, Role: "manager", Name: "manager", Hosts: hosts}
	sc.renew = func() (*tls.Certificate, error) { return issueFor(a.ca, id, time.Duration(a.CertLifetime)) }
	c, err := sc.renew()
	if err != nil {
		return nil, err
	}
	sc.cur = c
	return sc, nil
}

// writeRoot leaves the fleet's root in the state directory.
func (a *ManagerApp) writeRoot() error {
	return os.WriteFile(a.rootFile(), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: a.ca.Root().Raw}), 0o644)
}

// issueFor has the fleet CA sign a fresh key for id.
func issueFor(ca *fleetca.Issuer, id nodeid.ID, life time.Duration) (*tls.Certificate, error) {
	if life <= 0 {
		life = 24 * time.Hour
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	chain, _, err := ca.Issue(&key.PublicKey, id, life)
	if err != nil {
		return nil, err
	}
	c := &tls.Certificate{Certificate: chain, PrivateKey: key}
	c.Leaf, err = x509.ParseCertificate(chain[0])
	return c, err
}

// get is the listener's GetCertificate: the current certificate, renewed
// first when a third of its lifetime is left.
func (s *serverCert) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.renew != nil {
		leaf := s.cur.Leaf
		if time.Until(leaf.NotAfter) < leaf.NotAfter.Sub(leaf.NotBefore)/3 {
			if c, err := s.renew(); err == nil {
				s.cur = c
			}
		}
	}
	return s.cur, nil
}
