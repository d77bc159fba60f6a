package adapt

import (
	"net"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// measure reads what the kernel knows of a client's TCP path (TCP_INFO):
// the smoothed round trip, which the kernel has from the handshake on,
// and the delivery rate, once the connection has carried data. A
// connection that is not TCP (QUIC, a unix socket) gives nothing.
func measure(c net.Conn) link {
	// Unwrap TLS (tls.Conn) and listener wrappers that expose their conn.
	for i := 0; i < 8; i++ {
		w, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			break
		}
		c = w.NetConn()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return link{}
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return link{}
	}
	var info *unix.TCPInfo
	var gerr error
	if err := raw.Control(func(fd uintptr) {
		info, gerr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
	}); err != nil || gerr != nil || info == nil {
		return link{}
	}
	l := link{rtt: time.Duration(info.Rtt) * time.Microsecond}
	if info.Delivery_rate > 0 && info.Bytes_acked > 64<<10 {
		// The rate is meaningful once a few windows went out; before, it
		// measures the handshake's slow start, not the path.
		l.downlink = float64(info.Delivery_rate) * 8
	}
	return l
}
