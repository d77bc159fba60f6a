package tmptransport

import "sync"

// Packet buffers are pooled: a busy session moves tens of thousands of
// packets per second, and allocating each would make the garbage collector
// the bottleneck.
const pooledBufSize = 2048

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, pooledBufSize); return &b }}

func getBuf(n int) []byte {
	if n > pooledBufSize {
		return make([]byte, 0, n)
	}
	return (*bufPool.Get().(*[]byte))[:0]
}

func putBuf(b []byte) {
	if cap(b) != pooledBufSize {
		return
	}
	b = b[:0]
	bufPool.Put(&b)
}
