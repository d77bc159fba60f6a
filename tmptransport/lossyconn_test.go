package tmptransport

import (
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// lossyConn impairs the packets written through it: random loss, duplication
// and reordering (a packet is held back and sent after the next one). Tests
// wrap both ends' sockets with it.
type lossyConn struct {
	net.PacketConn
	loss, dup, reorder float64

	mu   sync.Mutex
	rng  *rand.Rand
	held []byte
	hto  net.Addr
	stop atomic.Bool

	dropped, duplicated, reordered atomic.Int64
}

func newLossyConn(c net.PacketConn, loss, dup, reorder float64, seed uint64) *lossyConn {
	return &lossyConn{PacketConn: c, loss: loss, dup: dup, reorder: reorder, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

func (c *lossyConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	if c.stop.Load() {
		return c.PacketConn.WriteTo(p, addr)
	}
	c.mu.Lock()
	r := c.rng.Float64()
	dup := c.rng.Float64() < c.dup
	reorder := c.rng.Float64() < c.reorder
	held, hto := c.held, c.hto
	c.held = nil
	if r >= c.loss && reorder && held == nil {
		c.held = append([]byte(nil), p...)
		c.hto = addr
		c.reordered.Add(1)
		c.mu.Unlock()
		time.AfterFunc(3*time.Millisecond, c.flush)
		return len(p), nil
	}
	c.mu.Unlock()
	if r < c.loss {
		c.dropped.Add(1)
	} else {
		c.PacketConn.WriteTo(p, addr)
		if dup {
			c.duplicated.Add(1)
			c.PacketConn.WriteTo(p, addr)
		}
	}
	if held != nil {
		c.PacketConn.WriteTo(held, hto)
	}
	return len(p), nil
}

func (c *lossyConn) flush() {
	c.mu.Lock()
	held, hto := c.held, c.hto
	c.held = nil
	c.mu.Unlock()
	if held != nil {
		c.PacketConn.WriteTo(held, hto)
	}
}
