//go:build linux

package tmptransport

import (
	"encoding/binary"
	"net"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Generic receive offload (UDP_GRO, Linux ≥ 5.0): the kernel hands the
// socket runs of equal-sized datagrams from one sender as one buffer, with
// the segment size in a control message, instead of one datagram per
// receive. On loopback, where the sender's GSO packets are never cut
// apart, a run of up to 64 packets crosses the kernel as one: the
// per-datagram cost of the receive path (the largest after the send path
// in the proxy benchmark's profiles) is paid once per run. quic-go does
// the same.

// groMaxBuffer is the largest buffer the kernel coalesces into.
const groMaxBuffer = 1 << 16

// enableGRO asks for coalesced receives; false if the socket refuses.
func enableGRO(c net.PacketConn) bool {
	return onSocket(c, func(fd int) bool { return unix.SetsockoptInt(fd, unix.IPPROTO_UDP, unix.UDP_GRO, 1) == nil })
}

// onSocket runs fn on a UDP socket's descriptor and reports what it
// reports; false for a PacketConn that is not a UDP socket.
func onSocket(c net.PacketConn, fn func(fd int) bool) bool {
	uc, ok := c.(*net.UDPConn)
	if !ok {
		return false
	}
	rc, err := uc.SyscallConn()
	if err != nil {
		return false
	}
	ok = false
	if err := rc.Control(func(fd uintptr) { ok = fn(int(fd)) }); err != nil {
		return false
	}
	return ok
}

// groOOBSize is room for the UDP_GRO control message.
var groOOBSize = unix.CmsgSpace(4)

// groSegment reads the segment size from a receive's control messages;
// 0 when the datagram was not coalesced.
func groSegment(oob []byte) int {
	for len(oob) >= unix.CmsgLen(0) {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		n := int(h.Len)
		if n < unix.CmsgLen(0) || n > len(oob) {
			return 0
		}
		if h.Level == unix.IPPROTO_UDP && h.Type == unix.UDP_GRO && n >= unix.CmsgLen(2) {
			data := oob[unix.CmsgLen(0):n]
			if len(data) >= 4 {
				return int(binary.NativeEndian.Uint32(data))
			}
			return int(binary.NativeEndian.Uint16(data))
		}
		oob = oob[min(len(oob), unix.CmsgSpace(n-unix.CmsgLen(0))):]
	}
	return 0
}
