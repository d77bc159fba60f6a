package tmptransport

import "sync"

// Packet buffers are pooled: a busy session moves tens of thousands of
// packets per second, and allocating each would make the garbage collector
// the bottleneck.
const pooledBufSize = 2048

// The pool holds the buffers' arrays: a pointer to an array converts from
// and to the slice callers use without allocating, where a pointer to a
// slice header had to be allocated on every put.
var bufPool = sync.Pool{New: func() any { return new([pooledBufSize]byte) }}

func getBuf(n int) []byte {
	if n > pooledBufSize {
		return make([]byte, 0, n)
	}
	return bufPool.Get().(*[pooledBufSize]byte)[:0]
}

// putBuf returns a buffer from getBuf. One of another capacity is not the
// pool's, or does not start at its array's start, and is left to the
// garbage collector.
func putBuf(b []byte) {
	if cap(b) != pooledBufSize {
		return
	}
	bufPool.Put((*[pooledBufSize]byte)(b[:pooledBufSize]))
}
