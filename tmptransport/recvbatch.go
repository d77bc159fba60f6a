package tmptransport

import (
	"net"
	"time"

	"golang.org/x/net/ipv4"
)

// packetReader reads datagrams, many per syscall (recvmmsg through
// x/net/ipv4) when the PacketConn is a UDP socket; a wrapped or emulated
// PacketConn is read one datagram at a time. On Linux, ipv4.PacketConn's
// ReadBatch works on IPv6 sockets too: it only issues recvmmsg.
type packetReader struct {
	conn    net.PacketConn
	batch   *ipv4.PacketConn
	msgs    []ipv4.Message
	mm      *mmsgReader // a connected socket's batches (recvmmsg_linux.go); then batch is unused
	one     []byte
	gro     bool // the kernel coalesces runs of datagrams (gro_linux.go)
	bufSize int
}

const (
	readBatchSize = 32
	groBatchSize  = 4
)

func newPacketReader(c net.PacketConn, bufSize int) *packetReader {
	r := &packetReader{conn: c}
	if uc, ok := c.(*net.UDPConn); ok {
		r.batch = ipv4.NewPacketConn(uc)
		r.mm = newMmsgReader(c)
		n := readBatchSize
		if r.gro = enableGRO(c); r.gro {
			// Each buffer takes a coalesced run of up to 64 kB: fewer of
			// them hold as much (and 32 of 64 kB cost the idle process
			// measurably, in the race detector most of all). A busy
			// path that does not coalesce grows the batch (read).
			bufSize = max(bufSize, groMaxBuffer)
			n = groBatchSize
		}
		r.bufSize = bufSize
		r.grow(n)
		return r
	}
	r.one = make([]byte, bufSize)
	return r
}

// read blocks for at least one datagram and calls fn for each, with the time
// it was read; fn must not keep b. The time is taken when the read returns,
// so that an ACK waiting for its session to be free does not count that wait
// as network round-trip time.
func (r *packetReader) read(fn func(b []byte, addr net.Addr, at time.Time)) error {
	if r.batch == nil {
		n, addr, err := r.conn.ReadFrom(r.one)
		if err != nil {
			return err
		}
		fn(r.one[:n], addr, time.Now())
		return nil
	}
	var n int
	var err error
	if r.mm != nil {
		n, err = r.mm.read()
	} else {
		n, err = r.batch.ReadBatch(r.msgs, 0)
	}
	if err != nil {
		return err
	}
	at := time.Now()
	coalesced := false
	for i := 0; i < n; i++ {
		var b, oob []byte
		var addr net.Addr
		if r.mm != nil {
			b, oob = r.mm.data(i), r.mm.oob(i)
		} else {
			m := &r.msgs[i]
			b, oob, addr = m.Buffers[0][:m.N], m.OOB[:m.NN], m.Addr
		}
		seg := 0
		if r.gro && len(oob) > 0 {
			seg = groSegment(oob)
		}
		if seg <= 0 || seg >= len(b) {
			fn(b, addr, at)
			continue
		}
		coalesced = true
		// A coalesced run: every datagram is seg bytes but the last.
		for len(b) > 0 {
			k := min(seg, len(b))
			fn(b[:k], addr, at)
			b = b[k:]
		}
	}
	if n == r.batchLen() && !coalesced && n < readBatchSize {
		// A full batch of single datagrams: the path does not coalesce
		// (a TUN device has no GRO), so a syscall brought only
		// groBatchSize packets. Take more per syscall, up to
		// readBatchSize. On the lan profile 4 per recvmmsg cost the
		// front-end 4 % more CPU than 32.
		r.grow(min(2*n, readBatchSize))
	}
	return nil
}

func (r *packetReader) batchLen() int {
	if r.mm != nil {
		return r.mm.size()
	}
	return len(r.msgs)
}

// grow makes the batch n messages long.
func (r *packetReader) grow(n int) {
	if r.mm != nil {
		oob := 0
		if r.gro {
			oob = groOOBSize
		}
		r.mm.grow(n, r.bufSize, oob)
		return
	}
	for len(r.msgs) < n {
		m := ipv4.Message{Buffers: [][]byte{make([]byte, r.bufSize)}}
		if r.gro {
			m.OOB = make([]byte, groOOBSize)
		}
		r.msgs = append(r.msgs, m)
	}
}
