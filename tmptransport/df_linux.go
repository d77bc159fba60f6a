//go:build linux

package tmptransport

import (
	"net"

	"golang.org/x/sys/unix"
)

// dontFragment sets the IP don't-fragment bit on a UDP socket's packets
// (IP_PMTUDISC_PROBE: DF set, the kernel's own path-MTU cache ignored, as
// quic-go does), which path MTU discovery needs (pmtud.go). It reports
// whether the socket took it.
func dontFragment(c net.PacketConn) bool {
	return onSocket(c, func(fd int) bool {
		e4 := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_PROBE)
		e6 := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MTU_DISCOVER, unix.IPV6_PMTUDISC_PROBE)
		return e4 == nil || e6 == nil
	})
}
