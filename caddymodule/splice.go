package caddymodule

import (
	"io"
	"net"
	"sync"

	"github.com/conductor-edge/conductor/tmptransport"
)

// tcpSide is the socket end of a spliced connection: what it reads and
// writes through (a layer4 connection replays the bytes its matchers
// read), and the socket under it, for half-close and abort.
type tcpSide struct {
	rw   io.ReadWriter
	conn net.Conn
}

// splice carries a TCP connection over a TMP stream, both ways, until both
// directions end. A FIN on one side becomes a FIN on the other (half-close
// is kept: a client may send its whole request, close its side and still
// read the answer). A reset on one side becomes a reset on the other: the
// stream's RESET_STREAM, the socket's RST (SO_LINGER 0).
func splice(st *tmptransport.Stream, tcp tcpSide) {
	var wg sync.WaitGroup
	// Any failure ends both directions as a reset, once: the side that
	// failed first decides, the other side's error is its echo.
	var abortOnce sync.Once
	abort := func() {
		abortOnce.Do(func() {
			st.Reset(tmptransport.StreamCancelled)
			if tc, ok := tcp.conn.(*net.TCPConn); ok {
				tc.SetLinger(0) // close sends RST, not FIN
			}
			tcp.conn.Close()
		})
	}
	wg.Add(2)
	go func() { // socket → stream
		defer wg.Done()
		if _, err := io.Copy(st, tcp.rw); err != nil {
			abort() // the socket was reset, or the stream failed
			return
		}
		st.CloseWrite()
	}()
	go func() { // stream → socket
		defer wg.Done()
		if _, err := io.Copy(tcp.rw, st); err != nil {
			abort() // the stream was reset, or the socket failed
			return
		}
		closeWrite(tcp.conn)
	}()
	wg.Wait()
	st.Close()
	tcp.conn.Close()
}

// closeWrite half-closes a socket that can, and closes one that cannot.
func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
		return
	}
	c.Close()
}
