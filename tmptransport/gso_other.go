//go:build !linux

package tmptransport

import "net"

func gsoCapable(net.PacketConn) bool { return false }

func (s *Session) writeGSO([][]byte) bool { return false }
