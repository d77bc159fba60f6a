package esi

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// The template may arrive compressed: esi leaves the client's
// Accept-Encoding on the request, so Caddy's encode (after edge_cache in
// the directive order) compresses every answer the cache stores, and a
// template among them. esi decodes the template to parse it, and encodes
// the page it assembles for the client itself, at a level that follows
// the client's link: the lite and text classes adapt gives a slow link get
// the best compression, other clients the default. Caddy's encode has one
// level per site; this is the one place that knows both the page and the
// link.

// decodable are the encodings Caddy's encode produces.
func decodable(ce string) bool { return ce == "" || ce == "gzip" || ce == "zstd" }

// codecs holds the encoders and decoders, reused across pages: a zstd
// encoder allocates its window on creation.
type codecs struct {
	zstdBest, zstdDefault, zstdDec sync.Pool
}

// pageEncoding picks the page's encoding from the client's Accept-Encoding:
// zstd, then gzip, else none.
func pageEncoding(acceptEncoding string) string {
	var gz, zs bool
	for _, part := range strings.Split(acceptEncoding, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if k, v, ok := strings.Cut(strings.TrimSpace(params), "="); ok && strings.EqualFold(strings.TrimSpace(k), "q") {
			if q, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err != nil || q <= 0 {
				continue // q=0: not acceptable (RFC 9110 §12.4.2)
			}
		}
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "zstd":
			zs = true
		case "gzip":
			gz = true
		}
	}
	switch {
	case zs:
		return "zstd"
	case gz:
		return "gzip"
	}
	return ""
}

// slowClass reports whether adapt classed the client's link as slow.
func slowClass(h http.Header) bool {
	c := h.Get("Conductor-Client-Class")
	return c == "lite" || c == "text"
}

// encoder wraps w in the encoding; close flushes the rest and returns the
// encoder to its pool.
type encoder interface {
	io.Writer
	Flush() error
	Close() error
}

type nopEncoder struct{ io.Writer }

func (nopEncoder) Flush() error { return nil }
func (nopEncoder) Close() error { return nil }

func (c *codecs) encoder(w io.Writer, encoding string, best bool) encoder {
	switch encoding {
	case "gzip":
		level := gzip.DefaultCompression
		if best {
			level = gzip.BestCompression
		}
		gw, _ := gzip.NewWriterLevel(w, level)
		return gw
	case "zstd":
		pool, level := &c.zstdDefault, zstd.SpeedDefault
		if best {
			pool, level = &c.zstdBest, zstd.SpeedBestCompression
		}
		zw, _ := pool.Get().(*zstd.Encoder)
		if zw == nil {
			zw, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(level), zstd.WithEncoderConcurrency(1))
		}
		zw.Reset(w)
		return &pooledZstd{Encoder: zw, pool: pool}
	}
	return nopEncoder{w}
}

type pooledZstd struct {
	*zstd.Encoder
	pool *sync.Pool
}

func (z *pooledZstd) Close() error {
	err := z.Encoder.Close()
	z.pool.Put(z.Encoder)
	return err
}

// decoder reads the template in its Content-Encoding.
func (c *codecs) decoder(r io.Reader, encoding string) (io.Reader, func(), error) {
	switch encoding {
	case "gzip":
		gr, err := gzip.NewReader(r)
		return gr, func() {}, err
	case "zstd":
		zr, _ := c.zstdDec.Get().(*zstd.Decoder)
		if zr == nil {
			var err error
			if zr, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(64<<20)); err != nil {
				return nil, func() {}, err
			}
		}
		if err := zr.Reset(r); err != nil {
			return nil, func() {}, err
		}
		return zr, func() { zr.Reset(nil); c.zstdDec.Put(zr) }, nil
	}
	return r, func() {}, nil
}
