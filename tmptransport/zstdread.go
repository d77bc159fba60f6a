package tmptransport

import (
	"net"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"
)

// The read side of a compressed stream. klauspost/compress's decoder keeps
// the first error its source returns, for good: a read deadline that fired
// while the decoder waited for stream data broke the stream for every later
// Read, where net.Conn lets a caller set a new deadline and read on
// (x/net/nettest's FutureTimeout; TestCompressedStreamIsANetConn). Nor can
// Read ask the decoder only for what is already buffered: it cannot tell
// whether the decoder still holds bytes of a block, and asking it for more
// when it does not blocks in the stream.
//
// So the decoder runs in a goroutine of its own, the pump, which reads the
// stream without a deadline and hands what it decodes to Read in pooled
// 16 KiB buffers. Read waits for them under the deadline. Two buffers bound
// what the pump decodes ahead of the application. The pump is the stream's:
// it ends with the stream's data (its end, a reset, CloseRead, Close) or
// with the session, and Close waits for it before the decoder goes back to
// the session's pool.

const zstdPumpBuffers = 2

type zstdPump struct {
	dec  *zstd.Decoder
	out  chan zstdChunk // decoded bytes, then the end; room for every buffer
	free chan *[]byte   // buffers Read emptied, back to the pump
	stop chan struct{}  // closed by Close (stopOnce)
	done chan struct{}  // closed when the pump has returned
	wake chan struct{}  // the read deadline changed
	// stopOnce closes stop.
	stopOnce sync.Once

	// Read's side, with the stream's zrmu.
	cur      []byte // decoded and not yet read
	buf      *[]byte
	err      error // the end the pump reported, after cur
	released bool  // the decoder and buffers went back (Close)
}

type zstdChunk struct {
	buf *[]byte // a sendBlockPool block; b lies in it
	b   []byte
	err error
}

// readCompressedZRLocked reads what the pump decoded, under the deadline.
func (s *Stream) readCompressedZRLocked(p []byte) (int, error) {
	zp := s.zp.Load()
	if zp == nil {
		var err error
		if zp, err = s.startZstdPump(); err != nil {
			return 0, err
		}
	}
	for len(zp.cur) == 0 {
		if zp.err != nil {
			return 0, zp.err
		}
		if zp.buf != nil {
			zp.free <- zp.buf // never blocks: free has room for every buffer
			zp.buf = nil
		}
		c, err := s.nextZstdChunk(zp)
		if err != nil {
			return 0, err
		}
		zp.cur, zp.buf, zp.err = c.b, c.buf, c.err
	}
	n := copy(p, zp.cur)
	zp.cur = zp.cur[n:]
	return n, nil
}

func (s *Stream) startZstdPump() (*zstdPump, error) {
	d, err := s.sess.zstd.decoder(rawReader{s})
	if err != nil {
		return nil, err
	}
	zp := &zstdPump{
		dec:  d,
		out:  make(chan zstdChunk, zstdPumpBuffers),
		free: make(chan *[]byte, zstdPumpBuffers),
		stop: make(chan struct{}),
		done: make(chan struct{}),
		wake: make(chan struct{}, 1),
	}
	for range zstdPumpBuffers {
		zp.free <- sendBlockPool.Get().(*[]byte)
	}
	s.zp.Store(zp) // before Read reads the deadline: SetReadDeadline wakes it
	go s.runZstdPump(zp)
	return zp, nil
}

// runZstdPump decodes the stream into free buffers until the stream's data
// ends, Close stops it or the session ends.
func (s *Stream) runZstdPump(zp *zstdPump) {
	defer close(zp.done)
	for {
		var buf *[]byte
		select {
		case buf = <-zp.free:
		case <-zp.stop:
			return
		case <-s.sess.closed:
			return
		}
		b := (*buf)[:cap(*buf)]
		n, err := zp.dec.Read(b)
		zp.out <- zstdChunk{buf: buf, b: b[:n], err: err} // room: a chunk per buffer
		if err != nil {
			return
		}
	}
}

// nextZstdChunk waits, under the read deadline, for the pump's next chunk.
func (s *Stream) nextZstdChunk(zp *zstdPump) (zstdChunk, error) {
	for {
		select {
		case c := <-zp.out:
			return c, nil
		default:
		}
		if s.readDeadline.expired() {
			return zstdChunk{}, errDeadline
		}
		dl := s.readDeadline.time()
		var timeout <-chan time.Time
		var t *time.Timer
		if !dl.IsZero() {
			t = time.NewTimer(time.Until(dl))
			timeout = t.C
		}
		var c zstdChunk
		got, ended := false, false
		select {
		case c = <-zp.out:
			got = true
		case <-zp.done:
			ended = true
		case <-zp.wake: // a new deadline: look again
		case <-timeout:
		}
		if t != nil {
			t.Stop()
		}
		switch {
		case got:
			return c, nil
		case ended:
			// The pump sends its end before it returns, unless Close
			// stopped it or the session ended.
			select {
			case c := <-zp.out:
				return c, nil
			default:
			}
			select {
			case <-s.sess.closed:
				return zstdChunk{err: s.sess.closeErr}, nil
			default:
				return zstdChunk{err: net.ErrClosed}, nil
			}
		}
	}
}

// rawReader is the decoder's source: the stream, without a deadline.
type rawReader struct{ s *Stream }

func (r rawReader) Read(p []byte) (int, error) { return r.s.readRaw(p, nil) }

// closeZstdPump stops the pump, waits for it, and gives its decoder and
// buffers back. CloseRead has ended the stream's reading first, so a pump
// inside the decoder returns.
func (s *Stream) closeZstdPump() {
	zp := s.zp.Load()
	if zp == nil {
		return
	}
	zp.stopOnce.Do(func() { close(zp.stop) })
	s.zrmu.Lock()
	defer s.zrmu.Unlock()
	if zp.released {
		return
	}
	<-zp.done
	zp.released = true
	s.sess.zstd.putDecoder(zp.dec)
	putBlock := func(b *[]byte) {
		*b = (*b)[:0]
		sendBlockPool.Put(b)
	}
	if zp.buf != nil {
		putBlock(zp.buf)
		zp.buf, zp.cur = nil, nil
	}
	for {
		select {
		case b := <-zp.free:
			putBlock(b)
		case c := <-zp.out:
			putBlock(c.buf)
		default:
			zp.err = net.ErrClosed
			return
		}
	}
}
