//go:build !linux

package adapt

import "net"

// measure knows nothing of the path where TCP_INFO is not available.
func measure(net.Conn) link { return link{} }
