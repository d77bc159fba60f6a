//go:build !linux

package tmptransport

import "net"

// mmsgReader exists on Linux only (recvmmsg_linux.go).
type mmsgReader struct{}

func newMmsgReader(net.PacketConn) *mmsgReader     { return nil }
func (m *mmsgReader) grow(n, bufSize, oobSize int) {}
func (m *mmsgReader) read() (int, error)           { return 0, nil }
func (m *mmsgReader) data(int) []byte              { return nil }
func (m *mmsgReader) oob(int) []byte               { return nil }
func (m *mmsgReader) size() int                    { return 0 }
