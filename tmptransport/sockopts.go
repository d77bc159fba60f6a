package tmptransport

import "net"

// socketBufferSize is what TMP asks of the kernel for UDP send and receive
// buffers. The default (about 208 kB on Linux) holds ~140 packets, less than
// one window on a fast link, so bursts would be dropped at the socket before
// congestion control ever sees them. quic-go asks for 7 MB for the same
// reason. The kernel clamps the request to net.core.rmem_max / wmem_max.
const socketBufferSize = 8 << 20

type bufferSetter interface {
	SetReadBuffer(int) error
	SetWriteBuffer(int) error
}

// tuneSocket enlarges a UDP socket's buffers when it can; a PacketConn that
// is not a socket (a test wrapper, an emulator) is left alone.
func tuneSocket(c net.PacketConn) {
	if b, ok := c.(bufferSetter); ok {
		b.SetReadBuffer(socketBufferSize)
		b.SetWriteBuffer(socketBufferSize)
	}
}
