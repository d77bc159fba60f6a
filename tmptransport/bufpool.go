package tmptransport

import "sync"

// Packet buffers are pooled: a busy session moves tens of thousands of
// packets per second, and allocating each would make the garbage collector
// the bottleneck.
// Two sizes: base packets, and the default MaxPacketSize that path MTU
// discovery grows them to (pmtud.go).
const (
	pooledBufSize    = 2048
	pooledBigBufSize = 16384 + 128
)

// The pools hold the buffers' arrays: a pointer to an array converts from
// and to the slice callers use without allocating, where a pointer to a
// slice header had to be allocated on every put.
var (
	bufPool    = sync.Pool{New: func() any { return new([pooledBufSize]byte) }}
	bigBufPool = sync.Pool{New: func() any { return new([pooledBigBufSize]byte) }}
)

func getBuf(n int) []byte {
	switch {
	case n <= pooledBufSize:
		return bufPool.Get().(*[pooledBufSize]byte)[:0]
	case n <= pooledBigBufSize:
		return bigBufPool.Get().(*[pooledBigBufSize]byte)[:0]
	}
	return make([]byte, 0, n)
}

// putBuf returns a buffer from getBuf. One of another capacity is not a
// pool's, or does not start at its array's start, and is left to the
// garbage collector.
func putBuf(b []byte) {
	switch cap(b) {
	case pooledBufSize:
		bufPool.Put((*[pooledBufSize]byte)(b[:pooledBufSize]))
	case pooledBigBufSize:
		bigBufPool.Put((*[pooledBigBufSize]byte)(b[:pooledBigBufSize]))
	}
}
