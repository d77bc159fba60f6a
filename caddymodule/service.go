package caddymodule

import (
	"context"
	"fmt"
	"net"
	"time"

	"go.uber.org/zap"

	"github.com/conductor-edge/conductor/tmptransport"
	"github.com/pires/go-proxyproto"
)

// Service is one non-HTTP service a back-end serves over TMP (seed: "any
// network service … can be implemented using a combination of an
// originating server working cooperatively with a front-end"). A front-end
// opens a stream that names the service (layer4.handlers.tmp); the
// back-end dials Dial and splices the two.
type Service struct {
	// Dial is the origin's address (host:port, TCP).
	Dial string `json:"dial"`
	// ProxyProtocol, "v1" or "v2", sends the origin a PROXY protocol
	// header first (HAProxy's "The PROXY protocol", versions 1 and 2), with
	// the client's address and where it reached the front-end, as the
	// front-end gave them with the stream. Only for origins that expect
	// one: to any other, the header is garbage.
	ProxyProtocol string `json:"proxy_protocol,omitempty"`
}

func (s *Service) validate(name string) error {
	if !tmptransport.ValidServiceName(name) {
		return fmt.Errorf("conductor: service name %q: 1-%d characters of [A-Za-z0-9._-]", name, tmptransport.MaxServiceName)
	}
	if _, _, err := net.SplitHostPort(s.Dial); err != nil {
		return fmt.Errorf("conductor: service %s: dial %q: want host:port", name, s.Dial)
	}
	switch s.ProxyProtocol {
	case "", "v1", "v2":
	default:
		return fmt.Errorf("conductor: service %s: proxy_protocol %q: want v1 or v2", name, s.ProxyProtocol)
	}
	return nil
}

// proxyHeader is the PROXY protocol header for a stream's connection: its
// addresses when the front-end gave them; otherwise v2's LOCAL command or
// v1's UNKNOWN, which tell the origin to use the connection's own.
func (s *Service) proxyHeader(st *tmptransport.Stream) *proxyproto.Header {
	version := byte(1)
	if s.ProxyProtocol == "v2" {
		version = 2
	}
	src, dst := st.ConnAddrs()
	if !src.IsValid() || !dst.IsValid() {
		return &proxyproto.Header{Version: version, Command: proxyproto.LOCAL, TransportProtocol: proxyproto.UNSPEC}
	}
	return proxyproto.HeaderProxyFromAddrs(version, net.TCPAddrFromAddrPort(src), net.TCPAddrFromAddrPort(dst))
}

// serviceDialTimeout bounds the back-end's dial to a service's origin.
const serviceDialTimeout = 10 * time.Second

// serveService connects a stream that names a service to that service's
// origin, or refuses it when this back-end lists no such service.
func (s *sharedListener) serveService(st *tmptransport.Stream) {
	name := st.Service()
	svcs := s.services.Load()
	var svc *Service
	if svcs != nil {
		svc = (*svcs)[name]
	}
	if svc == nil {
		serviceStreams.WithLabelValues(name, "refused").Inc()
		if s.refusedLog.Allow() { // the peer chooses the name: at most one log a second
			s.logger.Warn("TMP stream for a service this back-end does not list: refused", zap.String("service", name), zap.Stringer("remote", st.RemoteAddr()))
		}
		st.Reset(tmptransport.StreamRefused)
		return
	}
	ctx, cancel := context.WithTimeout(s.ctx, serviceDialTimeout)
	conn, err := new(net.Dialer).DialContext(ctx, "tcp", svc.Dial)
	cancel()
	if err != nil {
		serviceStreams.WithLabelValues(name, "dial_failed").Inc()
		if s.refusedLog.Allow() {
			s.logger.Error("dialing a service's origin", zap.String("service", name), zap.String("dial", svc.Dial), zap.Error(err))
		}
		st.Reset(tmptransport.StreamRefused)
		return
	}
	if svc.ProxyProtocol != "" {
		conn.SetWriteDeadline(time.Now().Add(serviceDialTimeout))
		_, err := svc.proxyHeader(st).WriteTo(conn)
		conn.SetWriteDeadline(time.Time{})
		if err != nil {
			serviceStreams.WithLabelValues(name, "dial_failed").Inc()
			conn.Close()
			st.Reset(tmptransport.StreamRefused)
			return
		}
	}
	serviceStreams.WithLabelValues(name, "connected").Inc()
	splice(st, tcpSide{rw: conn, conn: conn})
}
