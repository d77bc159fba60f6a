package caddymodule

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddytls"

	"github.com/conductor-edge/conductor/caddymodule/internal/fleetca"
	"github.com/conductor-edge/conductor/internal/inproc"
	"github.com/conductor-edge/conductor/tmptransport"
)

// nodeCaddy runs a Caddy (in this process) that is both ends of a TMP link:
// a back-end site bound to TMP in front of origin, and a front-end site that
// proxies to it over TMP. It returns the front-end's URL, the TMP address,
// the storage directory and the log file; the admin endpoint is nodeAdmin.
func nodeCaddy(t *testing.T, tlsOpts, origin string) (front, tmpAddr, storage, logFile string) {
	t.Helper()
	dir := t.TempDir()
	storage, logFile = filepath.Join(dir, "storage"), filepath.Join(dir, "caddy.log")
	port, tmpPort := inproc.Port(t), inproc.Port(t)
	inproc.Load(t, fmt.Sprintf(`{
	admin %s
	auto_https off
	skip_install_trust
	persist_config off
	storage file_system %s
	log {
		output file %s
		level DEBUG
	}
	conductor {
		name node-1
		role both
		tls {
%s
		}
	}
}
http://127.0.0.1:%d {
	bind tmp/127.0.0.1
	reverse_proxy %s
}
http://127.0.0.1:%d {
	reverse_proxy 127.0.0.1:%d {
		transport tmp
	}
}
`, nodeAdmin, storage, logFile, tlsOpts, tmpPort, origin, port, tmpPort))
	return fmt.Sprintf("http://127.0.0.1:%d", port), fmt.Sprintf("127.0.0.1:%d", tmpPort), storage, logFile
}

// nodeAdmin is the admin endpoint of nodeCaddy's Caddy (one runs at a time
// in a test process).
const nodeAdmin = "127.0.0.1:2999"

// activeApp is the conductor app of the running config.
func activeApp(t *testing.T) *App {
	t.Helper()
	a, err := caddy.ActiveContext().App("conductor")
	if err != nil {
		t.Fatal(err)
	}
	return a.(*App)
}

// dialWith opens a TMP session to addr with a client certificate and the
// given roots, as any peer would.
func dialWith(addr string, cert tls.Certificate, roots *x509.CertPool) (*tmptransport.Session, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return tmptransport.Dial(ctx, addr, &tmptransport.Config{DialAttempts: 1, TLSConfig: &tls.Config{
		// Sent whatever CAs the back-end names (an attacker would).
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil },
		RootCAs:              roots,
		ServerName:           TMPServerName,
	}})
}

// waitLog waits until the log file contains want.
func waitLog(t *testing.T, file, want string) string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, _ := os.ReadFile(file)
		if strings.Contains(string(b), want) || time.Now().After(deadline) {
			return string(b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A `tls internal` site certificate of the same Caddy is no TMP peer. With
// the fleet's own CA (the default) it does not even chain; with the pki
// app's CA named explicitly (`ca local`), it chains but carries no node
// role. Either way the back-end refuses it and its log says why. Before,
// any leaf of Caddy's local CA, site certificates included, was a peer.
func TestSiteCertificateIsNotANode(t *testing.T) {
	origin := newTestOrigin(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "shop") })
	for _, c := range []struct{ name, opts, why string }{
		{"fleet CA", "", "certificate signed by unknown authority"},
		{"pki CA local", "\t\t\tca local", "is not a frontend or both of fleet"},
	} {
		t.Run(c.name, func(t *testing.T) {
			front, tmpAddr, _, logFile := nodeCaddy(t, c.opts, origin.hostport())
			// The link itself works.
			if resp, body := fetch(t, nil, "GET", front+"/"); resp.StatusCode != 200 || body != "shop" {
				t.Fatalf("through TMP: %d %q", resp.StatusCode, body)
			}
			// A site certificate from the same Caddy's local CA.
			site := issueSiteCert(t)
			roots := activeApp(t).creds.roots.Load()
			s, err := dialWith(tmpAddr, site, roots)
			if err == nil {
				s.CloseWithError(0, "")
				t.Fatal("a tls internal site certificate opened a TMP session")
			}
			log := waitLog(t, logFile, c.why)
			t.Logf("refused: %v", err)
			if !strings.Contains(log, "TMP handshake refused") || !strings.Contains(log, c.why) {
				t.Fatalf("the refusal is not logged with its reason %q:\n%s", c.why, log)
			}
			// And counted on the metrics endpoint.
			// At least once: on a loaded machine the client's Initial can be
			// retransmitted before the refusal reaches it, and the
			// retransmission is refused too.
			_, metrics := fetch(t, nil, "GET", "http://"+nodeAdmin+"/metrics")
			series := fmt.Sprintf(`conductor_tmp_handshakes_refused_total{listener=%q,reason="tls"} `, tmpAddr)
			i := strings.Index(metrics, series)
			var n float64
			if i >= 0 {
				fmt.Sscan(metrics[i+len(series):], &n)
			}
			if n < 1 {
				t.Fatalf("metrics lack %s≥1", series)
			}
		})
	}
}

// issueSiteCert gets a certificate for site.test from the running Caddy
// through caddytls's InternalIssuer: what `tls internal` gives any site.
func issueSiteCert(t *testing.T) tls.Certificate {
	t.Helper()
	ctx := caddy.ActiveContext()
	iss := &caddytls.InternalIssuer{CA: "local"}
	if err := iss.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csrDER, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: []string{"site.test", TMPServerName}}, key)
	if err != nil {
		t.Fatal(err)
	}
	csr, _ := x509.ParseCertificateRequest(csrDER)
	issued, err := iss.Issue(ctx, csr)
	if err != nil {
		t.Fatal(err)
	}
	var cert tls.Certificate
	for rest := issued.Certificate; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		cert.Certificate = append(cert.Certificate, b.Bytes)
	}
	cert.PrivateKey = key
	return cert
}

// trustStoreFiles lists the certificates of the system trust store that
// Caddy's truststore package writes on Debian.
func trustStoreFiles(t *testing.T) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	entries, _ := os.ReadDir("/usr/local/share/ca-certificates")
	for _, e := range entries {
		out[e.Name()] = true
	}
	return out
}

// A node's TMP credentials change nothing on the machine: with `auto_https
// off` and `skip_install_trust`, neither the fleet's own CA (the default)
// nor a pki CA the operator names for TMP puts a root in the system trust
// store. Before, the node certificate came from the pki app loaded with
// default settings, and its Start installed Caddy's local root whatever the
// Caddyfile said.
func TestNoTrustStoreInstall(t *testing.T) {
	origin := newTestOrigin(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "shop") })
	before := trustStoreFiles(t)
	for _, opts := range []string{"", "\t\t\tca local"} {
		front, _, storage, logFile := nodeCaddy(t, opts, origin.hostport())
		if resp, body := fetch(t, nil, "GET", front+"/"); resp.StatusCode != 200 || body != "shop" {
			t.Fatalf("through TMP: %d %q", resp.StatusCode, body)
		}
		log, _ := os.ReadFile(logFile)
		for _, bad := range []string{"installing root certificate", "failed to install root certificate", "installed properly"} {
			if strings.Contains(string(log), bad) {
				t.Errorf("ca %q: the log says %q", opts, bad)
			}
		}
		if opts == "" {
			if _, err := os.Stat(filepath.Join(storage, "pki", "authorities", "local")); err == nil {
				t.Error("the fleet CA's node loaded Caddy's local CA")
			}
			if _, err := os.Stat(filepath.Join(storage, "pki", "authorities", fleetca.ID(defaultFleet), "root.crt")); err != nil {
				t.Errorf("no fleet CA in storage: %v", err)
			}
		} else if !strings.Contains(string(log), "root certificate trust store installation disabled") {
			t.Error("the pki CA named for TMP was not kept out of the trust store")
		}
	}
	for name := range trustStoreFiles(t) {
		if !before[name] {
			t.Errorf("a certificate appeared in the system trust store: %s", name)
		}
	}
}

// Node certificates with a 2-minute lifetime rotate under a running link:
// a response streamed across the whole test keeps flowing on the session
// that was opened with the first certificate, and a new handshake every 10
// s, past the first certificate's expiry, keeps succeeding with the current
// ones. Before, the certificate was issued once at start (for 7 days) and
// captured in the TLS configuration, so every handshake after its expiry
// failed until a restart.
func TestTMPCertsRotate(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped in -short mode: 150 s of rotation")
	}
	const streamFor = 150 * time.Second
	origin := newTestOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/stream" {
			io.WriteString(w, "shop")
			return
		}
		chunk := strings.Repeat("x", 1024)
		for i := 0; i < int(streamFor/time.Second); i++ {
			io.WriteString(w, chunk)
			w.(http.Flusher).Flush()
			time.Sleep(time.Second)
		}
	})
	front, tmpAddr, _, _ := nodeCaddy(t, "\t\t\tcert_lifetime 2m", origin.hostport())
	app := activeApp(t)
	first := app.creds.cert.Load().Leaf

	streamed := make(chan error, 1)
	go func() {
		resp, err := (&http.Client{Timeout: streamFor + time.Minute}).Get(front + "/stream")
		if err != nil {
			streamed <- err
			return
		}
		defer resp.Body.Close()
		n, err := io.Copy(io.Discard, resp.Body)
		if err == nil && n != int64(streamFor/time.Second)*1024 {
			err = fmt.Errorf("streamed %d bytes, want %d", n, int64(streamFor/time.Second)*1024)
		}
		streamed <- err
	}()

	var ref credsRef
	serials := map[string]bool{}
	afterExpiry := 0
	start := time.Now()
	for time.Since(start) < streamFor {
		time.Sleep(10 * time.Second)
		if resp, body := fetch(t, nil, "GET", front+"/"); resp.StatusCode != 200 || body != "shop" {
			t.Fatalf("at %v: through TMP: %d %q", time.Since(start).Round(time.Second), resp.StatusCode, body)
		}
		ref.p.Store(app.creds)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		s, err := tmptransport.Dial(ctx, tmpAddr, &tmptransport.Config{TLSConfig: ref.clientTLS(), DialAttempts: 1})
		cancel()
		if err != nil {
			t.Fatalf("at %v: a new handshake failed: %v", time.Since(start).Round(time.Second), err)
		}
		peer := s.ConnectionState().PeerCertificates[0]
		serials[peer.SerialNumber.String()] = true
		if time.Now().After(first.NotAfter) {
			afterExpiry++
		}
		s.CloseWithError(0, "")
	}
	if err := <-streamed; err != nil {
		t.Fatalf("the response in flight: %v", err)
	}
	t.Logf("%d back-end certificates seen; %d handshakes after the first certificate expired", len(serials), afterExpiry)
	if len(serials) < 2 || afterExpiry == 0 {
		t.Fatalf("no rotation observed: %d certificates, %d handshakes after expiry", len(serials), afterExpiry)
	}
}

// A node certificate's URI must name the fleet, a role and the node.
func TestPeerRoleReadsTheNodeURI(t *testing.T) {
	for uri, want := range map[string]string{
		"conductor://conductor/frontend/fe-paris-1": "frontend",
		"conductor://conductor/backend/be1":         "backend",
		"conductor://conductor/both/node-1":         "both",
		"conductor://other/frontend/fe1":            "", // another fleet
		"conductor://conductor/admin/fe1":           "", // no such role
		"conductor://conductor/frontend/":           "", // no node name
		"conductor://conductor/frontend":            "",
		"https://conductor/frontend/fe1":            "",
	} {
		u, _ := url.Parse(uri)
		if got := peerRole(&x509.Certificate{URIs: []*url.URL{u}}, "conductor"); got != want {
			t.Errorf("%s: role %q, want %q", uri, got, want)
		}
	}
}
