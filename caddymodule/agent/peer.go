package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/conductor-edge/conductor/internal/enrol"
	"github.com/conductor-edge/conductor/internal/nodeid"
)

// Front-ends hand bundles to each other (the manager names the peers that
// hold one) over their own listener, `peer_listen`, with mutual TLS: each
// end shows its fleet certificate, the server admits only front-ends of
// the fleet, and the client checks the server's certificate against the
// address the manager gave (pinned in that certificate at enrolment).
// The digest and the signature are still checked before anything is
// installed; TLS keeps the bytes private and the peers honest.

// peerServer serves this node's bundles to its peers.
type peerServer struct {
	addr string // the listener's address (its real port when asked for :0)
	srv  *http.Server
	done chan struct{}
}

// startPeerServer listens on addr and serves w's bundles.
func startPeerServer(addr string, id *enrol.Identity, fleet string, w *worker) (*peerServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("peer_listen: %v", err)
	}
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS13,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return id.Certificate(), nil
		},
		ClientAuth: tls.RequireAndVerifyClientCert,
		ClientCAs:  id.FleetRoots(),
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("conductor: peer sent no certificate")
			}
			if p, ok := nodeid.FromCert(cs.PeerCertificates[0], fleet); !ok || (p.Role != "frontend" && p.Role != "both") {
				return errors.New("conductor: bundles go to front-ends of the fleet only")
			}
			return nil
		},
	}
	p := &peerServer{addr: ln.Addr().String(), done: make(chan struct{})}
	p.srv = &http.Server{
		Handler:           http.HandlerFunc(w.servePeer),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       time.Minute,
		ErrorLog:          zap.NewStdLog(w.logger.Named("peer")),
	}
	go func() {
		defer close(p.done)
		p.srv.Serve(tls.NewListener(ln, cfg))
	}()
	return p, nil
}

func (p *peerServer) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	p.srv.Shutdown(ctx)
	<-p.done
}

// servePeer hands a held bundle to a peer.
func (w *worker) servePeer(rw http.ResponseWriter, r *http.Request) {
	digest, ok := strings.CutPrefix(r.URL.Path, peerPath)
	if !ok || r.Method != http.MethodGet {
		http.Error(rw, "not found", http.StatusNotFound)
		return
	}
	if !strings.HasPrefix(digest, "sha256:") || strings.ContainsAny(digest, "/\\.") {
		http.Error(rw, "bad digest", http.StatusBadRequest)
		return
	}
	f, err := os.Open(w.rawPath(digest))
	if err != nil {
		http.Error(rw, "bundle "+digest+" not held here", http.StatusNotFound)
		return
	}
	defer f.Close()
	sig, _ := os.ReadFile(w.rawPath(digest) + ".sig")
	rw.Header().Set("Content-Type", "application/gzip")
	rw.Header().Set("X-Bundle-Signature", string(sig))
	io.Copy(rw, f)
}

// peerClient fetches from peers: it shows this node's certificate and
// trusts the fleet's root.
func peerClient(id *enrol.Identity) *http.Client {
	tc := id.TLSConfig()
	tc.RootCAs = id.FleetRoots()
	return &http.Client{Timeout: 40 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}}
}
