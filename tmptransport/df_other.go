//go:build !linux

package tmptransport

import "net"

// dontFragment: path MTU discovery is Linux-only here.
func dontFragment(net.PacketConn) bool { return false }
