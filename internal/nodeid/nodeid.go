// Package nodeid is a fleet node's identity as its certificate carries it:
// the URI SAN conductor://<fleet>/<role>/<name>, and the addresses pinned
// at enrolment as IP and DNS SANs. TMP, the manager's API and the DNS
// plugin read identities the same way, so one certificate names a node
// everywhere (DESIGN.md, "Trust").
package nodeid

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Roles a node certificate may carry. "both" is a node that is a front-end
// and a back-end at once; "dns" is a DNS server of the fleet; "origin" is
// an origin's own server, which sends clients to front-ends
// (conductor_redirect); "manager" is the manager's own server certificate.
var Roles = []string{"frontend", "backend", "both", "dns", "origin", "manager"}

// ServerName is the DNS name every TMP node certificate carries (trust
// comes from the fleet CA and the role, not from host names).
const ServerName = "conductor-tmp"

// ID is a node's identity.
type ID struct {
	Fleet, Role, Name string
	// Hosts are the addresses the node may claim (IPs and DNS names).
	Hosts []string
}

// URI is the identity's URI SAN.
func (id ID) URI() *url.URL {
	return &url.URL{Scheme: "conductor", Host: id.Fleet, Path: "/" + id.Role + "/" + url.PathEscape(id.Name)}
}

// Valid reports whether a name can be a node's name: 1–64 characters
// from [A-Za-z0-9._-], so that it is safe in URLs, paths and logs.
func Valid(name string) bool {
	if name == "" || len(name) > 64 || name == "." || name == ".." {
		return false
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// FromCert returns the identity a certificate gives its holder in fleet,
// and false if it is no node certificate of that fleet (a URI of the
// fleet, a known role and a node name). The chain must have been verified
// already.
func FromCert(cert *x509.Certificate, fleet string) (ID, bool) {
	for _, u := range cert.URIs {
		if u.Scheme != "conductor" || u.Host != fleet {
			continue
		}
		role, name, _ := strings.Cut(strings.TrimPrefix(u.Path, "/"), "/")
		if name == "" || strings.Contains(name, "/") || !slices.Contains(Roles, role) {
			continue
		}
		id := ID{Fleet: fleet, Role: role, Name: name}
		for _, ip := range cert.IPAddresses {
			id.Hosts = append(id.Hosts, ip.String())
		}
		for _, d := range cert.DNSNames {
			if d != ServerName {
				id.Hosts = append(id.Hosts, d)
			}
		}
		return id, true
	}
	return ID{}, false
}

// Claims reports whether addr (a host, or host:port) is one of the
// identity's pinned hosts. An empty addr claims nothing and is allowed.
func (id ID) Claims(addr string) bool {
	if addr == "" {
		return true
	}
	host := addr
	if h, _, err := net.SplitHostPort(addr); err == nil {
		host = h
	}
	if ip := net.ParseIP(host); ip != nil {
		host = ip.String()
	}
	return slices.ContainsFunc(id.Hosts, func(h string) bool { return strings.EqualFold(h, host) })
}

// SANs splits hosts into the IP and DNS SANs of a certificate.
func SANs(hosts []string) (ips []net.IP, names []string) {
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			ips = append(ips, ip)
		} else {
			names = append(names, h)
		}
	}
	return ips, names
}

// Backdate is how far before its issue a node certificate's NotBefore
// lies: clocks of nodes differ a little.
const Backdate = time.Minute

// Template is the certificate of a node with identity id, for lifetime
// from now: the URI SAN that names it, the pinned hosts, the TMP server
// name, and both TLS usages (a node is a server to some peers and a
// client to others).
func Template(id ID, lifetime time.Duration) *x509.Certificate {
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	ips, names := SANs(id.Hosts)
	now := time.Now()
	return &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: id.Name, OrganizationalUnit: []string{"conductor " + id.Role}},
		DNSNames:     append([]string{ServerName}, names...),
		IPAddresses:  ips,
		URIs:         []*url.URL{id.URI()},
		NotBefore:    now.Add(-Backdate),
		NotAfter:     now.Add(lifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
}

// Sign issues a node certificate for pub from the CA whose chain (the
// signing certificate first) and key are given. A certificate never
// outlives the one that signed it. It returns the chain, leaf first.
func Sign(pub crypto.PublicKey, id ID, lifetime time.Duration, chain []*x509.Certificate, caKey crypto.Signer) ([][]byte, error) {
	if len(chain) == 0 {
		return nil, errors.New("nodeid: the CA has no certificate")
	}
	lifetime = min(lifetime, time.Until(chain[0].NotAfter))
	der, err := x509.CreateCertificate(rand.Reader, Template(id, lifetime), chain[0], pub, caKey)
	if err != nil {
		return nil, err
	}
	out := [][]byte{der}
	for _, c := range chain {
		out = append(out, c.Raw)
	}
	return out, nil
}
