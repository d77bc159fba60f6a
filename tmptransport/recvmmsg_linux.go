//go:build linux

package tmptransport

import (
	"net"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mmsgReader reads many datagrams per recvmmsg(2) from a connected UDP
// socket, into buffers it keeps. x/net's ipv4.PacketConn.ReadBatch does the
// same for any socket, and builds a net.UDPAddr for every message it
// returns: on the lan profile (1452-byte packets, no GRO through the
// emulator's TUN devices) that work around the syscall took 0.31 s of a
// front-end's 4 s of CPU. A connected socket receives from its peer only,
// so its reader needs no address, and x/net offers no way to skip it.
type mmsgReader struct {
	rc   syscall.RawConn
	hdrs []unix.Mmsghdr
	iovs []unix.Iovec
	bufs [][]byte
	oobs [][]byte

	// recv is the poller's callback, made once: a closure made per read
	// was an allocation per syscall. It leaves its results in n and errno.
	recv  func(fd uintptr) bool
	n     int
	errno syscall.Errno
}

// newMmsgReader returns a reader for c if it is a connected UDP socket,
// else nil.
func newMmsgReader(c net.PacketConn) *mmsgReader {
	uc, ok := c.(*net.UDPConn)
	if !ok || uc.RemoteAddr() == nil {
		return nil
	}
	rc, err := uc.SyscallConn()
	if err != nil {
		return nil
	}
	m := &mmsgReader{rc: rc}
	m.recv = func(fd uintptr) bool {
		r, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&m.hdrs[0])), uintptr(len(m.hdrs)), 0, 0, 0)
		if e == unix.EAGAIN || e == unix.EINTR {
			return false // wait on the poller, and try again
		}
		m.n, m.errno = int(r), e
		return true
	}
	return m
}

// grow makes the batch n messages long, with buffers of bufSize bytes and
// control buffers of oobSize, and points each message at its buffers.
func (m *mmsgReader) grow(n, bufSize, oobSize int) {
	for len(m.bufs) < n {
		m.bufs = append(m.bufs, make([]byte, bufSize))
		if oobSize > 0 {
			m.oobs = append(m.oobs, make([]byte, oobSize))
		}
	}
	m.hdrs = make([]unix.Mmsghdr, n)
	m.iovs = make([]unix.Iovec, n)
	for i := range m.hdrs {
		m.iovs[i].Base = &m.bufs[i][0]
		m.iovs[i].SetLen(len(m.bufs[i]))
		h := &m.hdrs[i].Hdr
		h.Iov = &m.iovs[i]
		h.SetIovlen(1)
		if len(m.oobs) > i {
			h.Control = &m.oobs[i][0]
		}
	}
}

// read blocks until at least one datagram is in, and returns how many
// messages it filled: message i is data(i), with control messages oob(i).
func (m *mmsgReader) read() (int, error) {
	// The kernel writes back each message's length and its control
	// length; the rest of the headers stays as grow set it.
	for i := range m.oobs[:min(len(m.oobs), len(m.hdrs))] {
		m.hdrs[i].Hdr.SetControllen(len(m.oobs[i]))
	}
	m.n, m.errno = 0, 0
	if err := m.rc.Read(m.recv); err != nil {
		return 0, err
	}
	if m.errno != 0 {
		return 0, m.errno
	}
	return m.n, nil
}

func (m *mmsgReader) data(i int) []byte { return m.bufs[i][:m.hdrs[i].Len] }

func (m *mmsgReader) oob(i int) []byte {
	if len(m.oobs) <= i {
		return nil
	}
	return m.oobs[i][:m.hdrs[i].Hdr.Controllen]
}

// size is the batch's length in messages.
func (m *mmsgReader) size() int { return len(m.bufs) }
