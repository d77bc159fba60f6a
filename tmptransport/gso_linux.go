//go:build linux

package tmptransport

import (
	"encoding/binary"
	"errors"
	"net"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Generic segmentation offload (UDP_SEGMENT, Linux ≥ 4.18): one sendmsg
// carries up to 64 equal-sized packets, and the kernel cuts them apart. A
// syscall per packet was the largest cost in CPU profiles; quic-go does the
// same. A socket that refuses GSO falls back to one write per packet.

const gsoMaxSegments = 64

func gsoCapable(c net.PacketConn) bool {
	_, ok := c.(*net.UDPConn)
	return ok
}

// writeGSO sends pkts, grouping runs of equal-sized packets (the last of a
// run may be shorter). It reports false if the kernel refused GSO. The
// packets go to the kernel as they are, one iovec each: copying them into
// one buffer first was a memmove of every byte sent.
func (s *Session) writeGSO(pkts [][]byte) bool {
	uc := s.conn.(*net.UDPConn)
	var to unix.Sockaddr
	if !s.connectd {
		a, ok := s.RemoteAddr().(*net.UDPAddr)
		if !ok {
			return false
		}
		to = sockaddrOf(a, uc.LocalAddr())
		if to == nil {
			return false
		}
	}
	if s.rawConn == nil {
		rc, err := uc.SyscallConn()
		if err != nil {
			return false
		}
		s.rawConn = rc
	}
	var oob [32]byte
	cm := oob[:unix.CmsgSpace(2)]
	h := (*unix.Cmsghdr)(unsafe.Pointer(&cm[0]))
	h.Level = unix.SOL_UDP
	h.Type = unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
	for i := 0; i < len(pkts); {
		seg := len(pkts[i])
		j, total := i+1, seg
		for j < len(pkts) && j-i < gsoMaxSegments && total+len(pkts[j]) <= 65000 && len(pkts[j]) <= seg {
			total += len(pkts[j])
			j++
			if len(pkts[j-1]) < seg {
				break // a shorter packet ends the run
			}
		}
		if j-i == 1 {
			s.writeOne(pkts[i])
			i = j
			continue
		}
		binary.NativeEndian.PutUint16(cm[unix.CmsgLen(0):], uint16(seg))
		var serr error
		err := s.rawConn.Write(func(fd uintptr) bool {
			_, serr = unix.SendmsgBuffers(int(fd), pkts[i:j], cm, to, 0)
			return serr != unix.EAGAIN
		})
		if err == nil {
			err = serr
		}
		if err != nil && isGSORefused(err) {
			return false
		}
		i = j
	}
	return true
}

// sockaddrOf converts a UDP address for sendmsg on the socket bound to
// local; nil if it cannot. An IPv6 socket (Go's dual-stack default, bound
// to "::") takes IPv4 peers as IPv4-mapped addresses.
func sockaddrOf(a *net.UDPAddr, local net.Addr) unix.Sockaddr {
	la, _ := local.(*net.UDPAddr)
	v6socket := la != nil && la.IP.To4() == nil
	if ip4 := a.IP.To4(); ip4 != nil && !v6socket {
		sa := &unix.SockaddrInet4{Port: a.Port}
		copy(sa.Addr[:], ip4)
		return sa
	}
	if ip6 := a.IP.To16(); ip6 != nil {
		sa := &unix.SockaddrInet6{Port: a.Port}
		copy(sa.Addr[:], ip6)
		return sa
	}
	return nil
}

func isGSORefused(err error) bool {
	return errors.Is(err, unix.EIO) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOPROTOOPT) || errors.Is(err, unix.EOPNOTSUPP)
}
