package edgefn

import (
	"bytes"
	"errors"
	"io"
)

// callIO is an instance's stdin and stdout, pointed at the current call:
// the request's bytes in, the response's bytes out, up to a limit.
type callIO struct {
	in    bytes.Reader
	out   bytes.Buffer
	limit int64
	over  bool
}

var errResponseTooLarge = errors.New("the function's response exceeds max_response")

func (c *callIO) reset(in []byte, limit int64) {
	c.in.Reset(in)
	c.out.Reset()
	c.limit, c.over = limit, false
}

func (c *callIO) Read(p []byte) (int, error) { return c.in.Read(p) }

func (c *callIO) Write(p []byte) (int, error) {
	if int64(c.out.Len()+len(p)) > c.limit {
		c.over = true
		return 0, errResponseTooLarge
	}
	return c.out.Write(p)
}

var _ io.ReadWriter = (*callIO)(nil)
