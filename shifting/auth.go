package shifting

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/conductor-edge/conductor/internal/nodeid"
)

// Who may call the manager (DESIGN.md, "Trust"). Nodes are known by the
// client certificate of their TLS connection: the fleet CA signed it at
// enrolment, and it names the node, its role and the addresses it may
// claim. Operators are known by their key, a bearer secret with a role.
// Nothing else is trusted: not the source address, not a name in a body.

// Operator roles.
const (
	// RoleRead sees the status page, the state and the view.
	RoleRead = "read"
	// RoleAdmin also places sites, uploads bundles, mints join tokens and
	// revokes nodes.
	RoleAdmin = "admin"
)

// Operator is one operator's credential.
type Operator struct {
	Name string
	Role string // RoleRead or RoleAdmin
	// KeyHash is the SHA-256 of the operator's key (HashKey): the manager
	// keeps no key it could leak.
	KeyHash [32]byte
}

// HashKey hashes an operator key for Operator.KeyHash.
func HashKey(key string) [32]byte { return sha256.Sum256([]byte(key)) }

// caller is who sent a request: a node, an operator, or nobody.
type caller struct {
	node     *nodeid.ID
	operator *Operator
}

func (c caller) String() string {
	switch {
	case c.node != nil:
		return "node " + c.node.Name + " (" + c.node.Role + ")"
	case c.operator != nil:
		return "operator " + c.operator.Name + " (" + c.operator.Role + ")"
	}
	return "anonymous"
}

// identify says who sent r. A node certificate counts only if the TLS
// layer verified its chain against the fleet CA (VerifiedChains), names a
// node of this fleet, and was issued after the node's last revocation.
// An operator key is compared by its hash, in constant time, against every
// operator's (a handful): the work does not depend on the key sent.
func (m *Manager) identify(r *http.Request) caller {
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
		leaf := r.TLS.VerifiedChains[0][0]
		if id, ok := nodeid.FromCert(leaf, m.cfg.Fleet); ok && id.Role != "manager" {
			m.mu.Lock()
			revoked, was := m.state.Revoked[id.Name]
			m.mu.Unlock()
			if !was || issuedAt(leaf.NotBefore).After(revoked) {
				return caller{node: &id}
			}
		}
	}
	key, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || key == "" {
		return caller{}
	}
	h := HashKey(key)
	var found *Operator
	for i := range m.cfg.Operators {
		if subtle.ConstantTimeCompare(h[:], m.cfg.Operators[i].KeyHash[:]) == 1 {
			found = &m.cfg.Operators[i]
		}
	}
	return caller{operator: found}
}

// issuedAt is when a certificate of ours was issued: NotBefore is set a
// little early for clock skew between nodes.
func issuedAt(notBefore time.Time) time.Time { return notBefore.Add(nodeid.Backdate) }

var (
	errNoCredential = errors.New("no credential: a node presents its fleet certificate, an operator its key (Authorization: Bearer)")
	errForbidden    = errors.New("forbidden")
)

// An access rule says whether a caller may use an endpoint.
type access func(c caller, r *http.Request) error

// operatorWith admits operators of role (admin includes read).
func operatorWith(role string) access {
	return func(c caller, r *http.Request) error {
		switch {
		case c.operator != nil && (c.operator.Role == RoleAdmin || c.operator.Role == role):
			return nil
		case c.operator == nil && c.node == nil:
			return errNoCredential
		}
		return errForbidden
	}
}

// anyNode admits every enrolled node.
func anyNode(c caller, r *http.Request) error {
	if c.node != nil {
		return nil
	}
	if c.operator == nil {
		return errNoCredential
	}
	return errForbidden
}

// nodeSelf admits a node for its own {id} only.
func nodeSelf(c caller, r *http.Request) error {
	if err := anyNode(c, r); err != nil {
		return err
	}
	if r.PathValue("id") != c.node.Name {
		return errors.New("a node acts only as itself: its certificate names " + c.node.Name)
	}
	return nil
}

// viewer admits what reads the view: DNS servers, other nodes, and
// operators who may read.
func viewer(c caller, r *http.Request) error {
	if c.node != nil {
		return nil
	}
	return operatorWith(RoleRead)(c, r)
}

// either admits whom a or b admits.
func either(a, b access) access {
	return func(c caller, r *http.Request) error {
		if a(c, r) == nil {
			return nil
		}
		return b(c, r)
	}
}

// open admits everyone: the endpoint checks its own credential (enrolment
// with a join token) or serves nothing secret (the status page's HTML).
func open(caller, *http.Request) error { return nil }

// isFrontend: the role a node needs to serve sites.
func isFrontend(id *nodeid.ID) bool { return id.Role == "frontend" || id.Role == "both" }
