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
// run may be shorter). It reports false if the kernel refused GSO.
func (s *Session) writeGSO(pkts [][]byte) bool {
	uc := s.conn.(*net.UDPConn)
	var addr *net.UDPAddr
	if !s.connectd {
		a, ok := s.RemoteAddr().(*net.UDPAddr)
		if !ok {
			return false
		}
		addr = a
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
		buf := s.gsoBuf[:0]
		for _, p := range pkts[i:j] {
			buf = append(buf, p...)
		}
		s.gsoBuf = buf
		binary.NativeEndian.PutUint16(cm[unix.CmsgLen(0):], uint16(seg))
		if _, _, err := uc.WriteMsgUDP(buf, cm, addr); err != nil && isGSORefused(err) {
			return false
		}
		i = j
	}
	return true
}

func isGSORefused(err error) bool {
	return errors.Is(err, unix.EIO) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOPROTOOPT) || errors.Is(err, unix.EOPNOTSUPP)
}
