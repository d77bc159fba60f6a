package agent

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/caddyserver/caddy/v2"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/conductor-edge/conductor/caddymodule/internal/fleetca"
	"github.com/conductor-edge/conductor/shifting"
)

func init() {
	caddy.RegisterModule(ManagerApp{})
}

// ManagerApp is `conductor_manager`: the shifting manager, run by Caddy
// on its own listener, its state kept in StateDir.
type ManagerApp struct {
	Listen string `json:"listen"`
	// Operators are the operators' keys and roles (read, admin). Nodes
	// need none: they enrol with a join token and then present their
	// fleet certificate.
	Operators []OperatorKey `json:"operators,omitempty"`
	// Fleet names the fleet (default "conductor"); its CA, kept in Caddy's
	// storage, signs the nodes' certificates, for CertLifetime (default
	// 24h; nodes renew them when a third is left).
	Fleet        string         `json:"fleet,omitempty"`
	CertLifetime caddy.Duration `json:"cert_lifetime,omitempty"`
	SigningKey   string         `json:"signing_key,omitempty"`
	StateDir     string         `json:"state_dir,omitempty"`
	TargetRPS    float64        `json:"target_rps,omitempty"`
	MaxLoad      float64        `json:"max_load,omitempty"`
	Hysteresis   caddy.Duration `json:"hysteresis,omitempty"`
	Settle       caddy.Duration `json:"settle,omitempty"`
	Interval     caddy.Duration `json:"interval,omitempty"`
	// TLSCert and TLSKey (PEM files) are the API's server certificate.
	// Without them the fleet CA issues one for the listen address and
	// ServerNames, and nodes trust the fleet's root (written to
	// <state_dir>/fleet-ca.crt).
	TLSCert     string   `json:"tls_cert,omitempty"`
	TLSKey      string   `json:"tls_key,omitempty"`
	ServerNames []string `json:"server_names,omitempty"`
	// Etcd lists etcd endpoints: state and bundles live there, under
	// EtcdPrefix (default /conductor/), and the managers sharing it elect
	// one leader.
	Etcd       []string `json:"etcd,omitempty"`
	EtcdPrefix string   `json:"etcd_prefix,omitempty"`
	// EtcdCA, EtcdCert and EtcdKey are the PEM files of etcd's client TLS:
	// the CA that signed the etcd servers' certificates, and this
	// manager's client certificate and key (for etcd's client-cert-auth).
	// With EtcdCA, the endpoints are dialed over TLS.
	EtcdCA   string `json:"etcd_ca,omitempty"`
	EtcdCert string `json:"etcd_cert,omitempty"`
	EtcdKey  string `json:"etcd_key,omitempty"`

	ca     *fleetca.Issuer
	cert   *serverCert
	etcd   *clientv3.Client
	m      *shifting.Manager
	ln     net.Listener
	srv    *http.Server
	cancel context.CancelFunc
	done   chan struct{}
	logger *zap.Logger
	ctx    caddy.Context
}

// CaddyModule returns the Caddy module information.
func (ManagerApp) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "conductor_manager", New: func() caddy.Module { return new(ManagerApp) }}
}

// Provision loads the state.
func (a *ManagerApp) Provision(ctx caddy.Context) error {
	a.ctx = ctx
	a.logger = ctx.Logger()
	if a.Listen == "" {
		return errors.New("conductor_manager: listen is required")
	}
	operators, err := a.operators()
	if err != nil {
		return err
	}
	if a.StateDir == "" {
		a.StateDir = filepath.Join(caddy.AppDataDir(), "conductor", "manager")
	}
	if a.Fleet == "" {
		a.Fleet = "conductor"
	}
	if a.ca, err = fleetca.New(ctx, "", a.Fleet); err != nil {
		return fmt.Errorf("conductor_manager: %v", err)
	}
	if a.cert, err = a.serverCert(); err != nil {
		return fmt.Errorf("conductor_manager: %v", err)
	}
	var key ed25519.PublicKey
	if a.SigningKey != "" {
		k, err := hex.DecodeString(a.SigningKey)
		if err != nil || len(k) != ed25519.PublicKeySize {
			return fmt.Errorf("conductor_manager: signing_key must be a hex Ed25519 public key")
		}
		key = k
	}
	var store shifting.Store = shifting.FileStore{Dir: a.StateDir}
	var election shifting.Election
	if len(a.Etcd) > 0 {
		if a.EtcdPrefix == "" {
			a.EtcdPrefix = "/conductor/"
		}
		tlsCfg, err := a.etcdTLS()
		if err != nil {
			return fmt.Errorf("conductor_manager: etcd tls: %v", err)
		}
		cli, err := clientv3.New(clientv3.Config{Endpoints: a.Etcd, DialTimeout: 3 * time.Second, TLS: tlsCfg, Logger: a.logger.Named("etcd")})
		if err != nil {
			return fmt.Errorf("conductor_manager: etcd: %v", err)
		}
		a.etcd = cli
		el := &shifting.EtcdElection{Client: cli, Prefix: a.EtcdPrefix, ID: a.Listen}
		store = shifting.EtcdStore{Client: cli, Prefix: a.EtcdPrefix, Fence: el}
		election = el
	}
	m, err := shifting.New(shifting.Config{
		Fleet: a.Fleet, Operators: operators, Issuer: a.ca, CertLifetime: time.Duration(a.CertLifetime),
		SigningKey: key, Store: store, Election: election, Logger: a.logger,
		Policy: shifting.Policy{TargetRPS: a.TargetRPS, MaxLoad: a.MaxLoad, Hysteresis: time.Duration(a.Hysteresis),
			Settle: time.Duration(a.Settle), Interval: time.Duration(a.Interval)},
	})
	if err != nil {
		return err
	}
	a.m = m
	return nil
}

// etcdTLS builds the etcd client's TLS configuration, or nil without
// etcd_tls.
func (a *ManagerApp) etcdTLS() (*tls.Config, error) {
	if a.EtcdCA == "" {
		if a.EtcdCert != "" {
			return nil, errors.New("etcd_tls: a client certificate needs the CA of the etcd servers too")
		}
		return nil, nil
	}
	pem, err := os.ReadFile(a.EtcdCA)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", a.EtcdCA)
	}
	c := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if a.EtcdCert != "" {
		cert, err := tls.LoadX509KeyPair(a.EtcdCert, a.EtcdKey)
		if err != nil {
			return nil, err
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// Start serves the API and runs placement.
func (a *ManagerApp) Start() error {
	na, err := caddy.ParseNetworkAddress(a.Listen)
	if err != nil {
		return fmt.Errorf("conductor_manager: listen %q: %v", a.Listen, err)
	}
	// Caddy's listener pool shares the socket with the previous config's
	// manager across a reload.
	lnAny, err := na.Listen(a.ctx, 0, net.ListenConfig{})
	if err != nil {
		return err
	}
	// Always HTTPS. Nodes present their fleet certificate (verified
	// here against the fleet's root); operators and enrolling nodes send
	// none, and show a key or a join token instead.
	a.ln = tls.NewListener(lnAny.(net.Listener), &tls.Config{
		MinVersion:     tls.VersionTLS13,
		GetCertificate: a.cert.get,
		ClientAuth:     tls.VerifyClientCertIfGiven,
		ClientCAs:      a.ca.Roots(),
	})
	a.srv = &http.Server{Handler: a.m, ReadHeaderTimeout: 10 * time.Second}
	var ctx context.Context
	ctx, a.cancel = context.WithCancel(context.Background())
	a.done = make(chan struct{})
	go func() {
		defer close(a.done)
		a.m.Run(ctx)
	}()
	go a.srv.Serve(a.ln)
	a.logger.Info("manager serving", zap.String("listen", "https://"+a.Listen), zap.String("fleet_root", a.rootFile()), zap.Int("operators", len(a.Operators)))
	return nil
}

// Stop stops placement and the API.
func (a *ManagerApp) Stop() error {
	if a.cancel != nil {
		a.cancel()
		<-a.done
	}
	if a.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		a.srv.Shutdown(ctx)
	}
	if a.etcd != nil {
		a.etcd.Close()
	}
	return nil
}

var (
	_ caddy.App         = (*ManagerApp)(nil)
	_ caddy.Provisioner = (*ManagerApp)(nil)
)
