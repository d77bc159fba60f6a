package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/conductor-edge/conductor/tmptransport"
)

func init() {
	caddy.RegisterNetwork("tmp", listenTMP)
}

// listeners holds the TMP listeners of the back-end, shared across config
// reloads: Caddy starts the new config's servers before stopping the old
// ones, so both get a handle on the same TMP listener and its sessions, and
// front-ends never see the reload.
var listeners = caddy.NewUsagePool()

// listenTMP is the `tmp` network: a site that says `bind tmp/0.0.0.0:4433`
// gets a net.Listener whose connections are the streams front-ends open over
// TMP. Caddy's HTTP server then serves each stream like any connection.
func listenTMP(ctx context.Context, _, host, portRange string, portOffset uint, _ net.ListenConfig) (any, error) {
	cctx, ok := ctx.(caddy.Context)
	if !ok {
		return nil, errors.New("tmp network: not called from a Caddy config")
	}
	start, _, _ := strings.Cut(portRange, "-")
	port, err := strconv.ParseUint(start, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("tmp network: port %q: %v", portRange, err)
	}
	addr := net.JoinHostPort(host, strconv.FormatUint(port+uint64(portOffset), 10))
	appIface, err := cctx.App("conductor")
	if err != nil {
		return nil, err
	}
	app := appIface.(*App)
	key := "tmp-listen/" + addr
	v, _, err := listeners.LoadOrNew(key, func() (caddy.Destructor, error) {
		s := &sharedListener{addr: addr, conns: make(chan net.Conn), logger: app.logger, refusedLog: rate.NewLimiter(1, 1)}
		s.creds.p.Store(app.creds)
		cfg := app.tmpConfig(true, &s.creds)
		rk, err := resetKey(cctx)
		if err != nil {
			return nil, err
		}
		cfg.NodeSecret = rk
		s.l, err = tmptransport.Listen(addr, cfg)
		if err != nil {
			return nil, err
		}
		s.ctx, s.cancel = context.WithCancel(context.Background())
		s.wg.Add(1)
		go s.acceptSessions()
		app.logger.Info("listening for TMP", zap.String("address", s.l.Addr().String()))
		return s, nil
	})
	if err != nil {
		return nil, fmt.Errorf("tmp network: listen %s: %w", addr, err)
	}
	// The listener outlives configs: the next handshake uses this one's
	// credentials, and the next service stream its services.
	v.(*sharedListener).creds.p.Store(app.creds)
	svcs := app.Services
	v.(*sharedListener).services.Store(&svcs)
	return &listenerHandle{shared: v.(*sharedListener), key: key, done: make(chan struct{})}, nil
}

// sharedListener accepts TMP sessions and hands every stream of every
// session to whichever config's server asks first.
type sharedListener struct {
	addr       string
	creds      credsRef
	services   atomic.Pointer[map[string]*Service] // the current config's (service.go)
	refusedLog *rate.Limiter
	l          *tmptransport.Listener
	conns      chan net.Conn
	ctx        context.Context
	cancel     context.CancelFunc
	wg         sync.WaitGroup
	logger     *zap.Logger
}

func (s *sharedListener) acceptSessions() {
	defer s.wg.Done()
	for {
		sess, err := s.l.Accept(s.ctx)
		if err != nil {
			return
		}
		s.logger.Info("TMP session from front-end", zap.Stringer("remote", sess.RemoteAddr()),
			zap.Strings("peer", peerNames(sess)))
		s.wg.Add(1)
		go s.acceptStreams(sess)
	}
}

func peerNames(s *tmptransport.Session) []string {
	st := s.ConnectionState()
	if len(st.PeerCertificates) == 0 {
		return nil
	}
	return []string{st.PeerCertificates[0].Subject.CommonName}
}

func (s *sharedListener) acceptStreams(sess *tmptransport.Session) {
	defer s.wg.Done()
	for {
		st, err := sess.AcceptStream(s.ctx)
		if err != nil {
			return
		}
		if st.Service() != "" {
			// A TCP service, not HTTP: spliced to its origin (service.go).
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.serveService(st)
			}()
			continue
		}
		select {
		case s.conns <- st:
		case <-s.ctx.Done():
			st.Reset(tmptransport.StreamRefused)
			return
		}
	}
}

// Destruct closes the listener when the last config lets go of it.
func (s *sharedListener) Destruct() error {
	s.cancel()
	err := s.l.Close()
	s.wg.Wait()
	return err
}

// listenerHandle is one config's view of a shared listener.
type listenerHandle struct {
	shared *sharedListener
	key    string
	once   sync.Once
	done   chan struct{}
}

func (h *listenerHandle) Accept() (net.Conn, error) {
	select {
	case c := <-h.shared.conns:
		return c, nil
	case <-h.done:
		return nil, net.ErrClosed
	case <-h.shared.ctx.Done():
		return nil, net.ErrClosed
	}
}

func (h *listenerHandle) Close() error {
	h.once.Do(func() {
		close(h.done)
		listeners.Delete(h.key)
	})
	return nil
}

func (h *listenerHandle) Addr() net.Addr { return tmpAddr{h.shared.l.Addr()} }

// tmpAddr reports the UDP address under the network name "tmp".
type tmpAddr struct{ net.Addr }

func (tmpAddr) Network() string { return "tmp" }

var _ net.Listener = (*listenerHandle)(nil)
