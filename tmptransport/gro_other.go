//go:build !linux

package tmptransport

import "net"

const groMaxBuffer = 0

var groOOBSize = 0

func enableGRO(net.PacketConn) bool { return false }

func groSegment([]byte) int { return 0 }
