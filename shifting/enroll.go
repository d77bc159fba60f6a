package shifting

import (
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/conductor-edge/conductor/internal/enrol"
	"github.com/conductor-edge/conductor/internal/nodeid"
)

// Enrolment, after Kubernetes' and Nomad's node bootstrap: an operator
// mints a join token for one node (its name, role and the addresses it may
// claim); the node sends it once, with a certificate request, over HTTPS;
// the manager signs a certificate from the fleet CA that names the node
// and pins its addresses, and deletes the token. From then on the node
// proves who it is with that certificate, and renews it with itself.

// Issuer signs node certificates (the fleet CA).
type Issuer interface {
	// Issue signs a certificate for pub that names id (URI SAN) and pins
	// id.Hosts (IP and DNS SANs), valid for lifetime from now. It returns
	// the chain, leaf first, and the fleet's root, in DER.
	Issue(pub crypto.PublicKey, id nodeid.ID, lifetime time.Duration) (chain [][]byte, root []byte, err error)
}

// JoinToken is an outstanding join token, as the state keeps it: its
// secret only as a hash.
type JoinToken struct {
	Node    string    `json:"node"`
	Role    string    `json:"role"`
	Hosts   []string  `json:"hosts,omitempty"`
	Expires time.Time `json:"expires"`
	Hash    string    `json:"hash,omitempty"` // hex SHA-256 of the secret
	By      string    `json:"by"`
}

// Join tokens are bounded: at most maxJoinTokens outstanding, for at most
// maxJoinTTL each.
const (
	maxJoinTokens     = 256
	defaultJoinTTL    = 15 * time.Minute
	maxJoinTTL        = 24 * time.Hour
	defaultCertLife   = 24 * time.Hour
	maxEnrolBodyBytes = 16 << 10
)

// JoinRequest is what an admin asks for at POST /v1/join-tokens.
type JoinRequest struct {
	Node  string   `json:"node"`
	Role  string   `json:"role"`
	Hosts []string `json:"hosts,omitempty"`
	TTL   string   `json:"ttl,omitempty"` // a Go duration; default 15m
}

// JoinAnswer carries a new join token: "<id>.<secret>", shown once.
type JoinAnswer struct {
	Token   string    `json:"token"`
	Node    string    `json:"node"`
	Expires time.Time `json:"expires"`
}

func (m *Manager) handleJoinToken(w http.ResponseWriter, r *http.Request, c caller) {
	var req JoinRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, maxEnrolBodyBytes)).Decode(&req); err != nil {
		http.Error(w, "join token: "+err.Error(), http.StatusBadRequest)
		return
	}
	if !nodeid.Valid(req.Node) {
		http.Error(w, "join token: node must be 1-64 characters of [A-Za-z0-9._-]", http.StatusBadRequest)
		return
	}
	if !slices.Contains([]string{"frontend", "backend", "both", "dns", "origin"}, req.Role) {
		http.Error(w, "join token: role must be frontend, backend, both, dns or origin", http.StatusBadRequest)
		return
	}
	for _, h := range req.Hosts {
		if !validHost(h) {
			http.Error(w, "join token: hosts are IP addresses or DNS names, without ports: "+h, http.StatusBadRequest)
			return
		}
	}
	ttl := defaultJoinTTL
	if req.TTL != "" {
		d, err := time.ParseDuration(req.TTL)
		if err != nil || d <= 0 || d > maxJoinTTL {
			http.Error(w, fmt.Sprintf("join token: ttl %q: a duration up to %v", req.TTL, maxJoinTTL), http.StatusBadRequest)
			return
		}
		ttl = d
	}
	var id, secret [16]byte
	rand.Read(id[:])
	rand.Read(secret[:])
	sum := sha256.Sum256(secret[:])
	now := time.Now()
	jt := &JoinToken{Node: req.Node, Role: req.Role, Hosts: req.Hosts, Expires: now.Add(ttl).UTC(), Hash: hex.EncodeToString(sum[:]), By: c.operator.Name}
	m.mu.Lock()
	for k, t := range m.state.JoinTokens {
		if now.After(t.Expires) {
			delete(m.state.JoinTokens, k)
		}
	}
	if len(m.state.JoinTokens) >= maxJoinTokens {
		m.mu.Unlock()
		http.Error(w, fmt.Sprintf("join token: %d tokens are outstanding; let some expire or use them", maxJoinTokens), http.StatusTooManyRequests)
		return
	}
	if m.state.JoinTokens == nil {
		m.state.JoinTokens = map[string]*JoinToken{}
	}
	m.state.JoinTokens[hex.EncodeToString(id[:])] = jt
	err := m.saveLocked()
	m.mu.Unlock()
	if err != nil {
		http.Error(w, "join token: the state could not be saved", http.StatusServiceUnavailable)
		return
	}
	m.logger.Info("join token minted", zap.String("node", req.Node), zap.String("role", req.Role), zap.Strings("hosts", req.Hosts), zap.Time("expires", jt.Expires), zap.String("by", c.operator.Name))
	w.WriteHeader(http.StatusCreated)
	writeJSON(w, JoinAnswer{Token: hex.EncodeToString(id[:]) + "." + hex.EncodeToString(secret[:]), Node: req.Node, Expires: jt.Expires})
}

// validHost: an IP address, or a DNS name (no port, no scheme).
func validHost(h string) bool {
	if net.ParseIP(h) != nil {
		return true
	}
	if h == "" || len(h) > 253 {
		return false
	}
	for _, c := range h {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// takeJoinToken checks a join token and, with take, removes it, so that
// it works once.
func (m *Manager) takeJoinToken(raw string, take bool) (*JoinToken, error) {
	idHex, secretHex, _ := strings.Cut(raw, ".")
	secret, err := hex.DecodeString(secretHex)
	if err != nil || len(idHex) != 32 || len(secret) != 16 {
		return nil, errors.New("malformed join token")
	}
	sum := sha256.Sum256(secret)
	m.mu.Lock()
	defer m.mu.Unlock()
	jt := m.state.JoinTokens[idHex]
	if jt == nil {
		return nil, errors.New("unknown or used join token")
	}
	want, _ := hex.DecodeString(jt.Hash)
	if subtle.ConstantTimeCompare(sum[:], want) != 1 {
		return nil, errors.New("unknown or used join token")
	}
	if !take {
		return jt, nil
	}
	delete(m.state.JoinTokens, idHex)
	// Saved before the certificate goes out: a token is never good twice,
	// not even after a crash or with another leader.
	if err := m.saveLocked(); err != nil {
		return nil, errors.New("the state could not be saved; try again")
	}
	if time.Now().After(jt.Expires) {
		return nil, errors.New("join token expired")
	}
	return jt, nil
}

// handleEnroll exchanges a join token for a node certificate.
func (m *Manager) handleEnroll(w http.ResponseWriter, r *http.Request, _ caller) {
	raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		http.Error(w, "enrolment needs a join token (Authorization: Bearer <token>)", http.StatusUnauthorized)
		return
	}
	// The token is checked before the request is parsed (a signature
	// check is work that nobody without a token may cause), and taken
	// after (a malformed request does not use it up).
	refuse := func(err error) {
		if m.peerLog.Allow() { // a peer can trigger this: at most one a second
			m.logger.Warn("enrolment refused", zap.String("remote", r.RemoteAddr), zap.Error(err))
		}
		http.Error(w, err.Error(), http.StatusUnauthorized)
	}
	if _, err := m.takeJoinToken(raw, false); err != nil {
		refuse(err)
		return
	}
	pub, err := readCSR(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	jt, err := m.takeJoinToken(raw, true)
	if err != nil {
		refuse(err)
		return
	}
	id := nodeid.ID{Fleet: m.cfg.Fleet, Role: jt.Role, Name: jt.Node, Hosts: jt.Hosts}
	m.issue(w, pub, id, "enrolled")
}

// handleRenew gives a node a new certificate with its identity as it is:
// the same name, role and pinned addresses, for a new key.
func (m *Manager) handleRenew(w http.ResponseWriter, r *http.Request, c caller) {
	pub, err := readCSR(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	m.issue(w, pub, *c.node, "renewed")
}

func (m *Manager) issue(w http.ResponseWriter, pub crypto.PublicKey, id nodeid.ID, what string) {
	if m.cfg.Issuer == nil {
		http.Error(w, "this manager has no fleet CA", http.StatusNotImplemented)
		return
	}
	chain, root, err := m.cfg.Issuer.Issue(pub, id, m.certLifetime())
	if err != nil {
		m.logger.Error("issuing a node certificate", zap.String("node", id.Name), zap.Error(err))
		http.Error(w, "issuing the certificate failed", http.StatusInternalServerError)
		return
	}
	var ans enrol.Answer
	for _, der := range chain {
		ans.Certificate += string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	}
	ans.CA = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: root}))
	m.logger.Info("node "+what, zap.String("node", id.Name), zap.String("role", id.Role), zap.Strings("hosts", id.Hosts))
	writeJSON(w, ans)
}

// readCSR reads a PEM certificate request and checks its signature (the
// node holds the key). Only its key is used: the identity comes from the
// join token or the current certificate, never from the request.
func readCSR(r *http.Request) (crypto.PublicKey, error) {
	var req enrol.Request
	if err := json.NewDecoder(io.LimitReader(r.Body, maxEnrolBodyBytes)).Decode(&req); err != nil {
		return nil, fmt.Errorf("enrolment request: %v", err)
	}
	b, _ := pem.Decode([]byte(req.CSR))
	if b == nil || b.Type != "CERTIFICATE REQUEST" {
		return nil, errors.New(`enrolment request: want {"csr": "<PEM CERTIFICATE REQUEST>"}`)
	}
	csr, err := x509.ParseCertificateRequest(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("certificate request: %v", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("certificate request: %v", err)
	}
	return csr.PublicKey, nil
}

// handleRevoke forgets a node and refuses every certificate issued to it
// so far: it must enrol again, with a new join token.
func (m *Manager) handleRevoke(w http.ResponseWriter, r *http.Request, c caller) {
	id := r.PathValue("id")
	now := time.Now().UTC()
	m.mu.Lock()
	if m.state.Revoked == nil {
		m.state.Revoked = map[string]time.Time{}
	}
	// A revocation matters while certificates issued before it live.
	for n, at := range m.state.Revoked {
		if now.Sub(at) > m.certLifetime()+nodeid.Backdate {
			delete(m.state.Revoked, n)
		}
	}
	m.state.Revoked[id] = now
	delete(m.state.Nodes, id)
	for _, s := range m.state.Sites {
		delete(s.Assigned, id)
	}
	m.recordLocked(Decision{Time: now, Node: id, Action: "revoke", Reason: "operator revoked the node's certificates", By: c.operator.Name})
	m.bumpLocked()
	m.mu.Unlock()
	m.logger.Warn("node revoked", zap.String("node", id), zap.String("by", c.operator.Name))
	w.WriteHeader(http.StatusNoContent)
}

func (m *Manager) certLifetime() time.Duration {
	if m.cfg.CertLifetime > 0 {
		return m.cfg.CertLifetime
	}
	return defaultCertLife
}
