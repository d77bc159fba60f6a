package adapt

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/gen2brain/webp"
	"go.uber.org/zap"
	"golang.org/x/image/draw"
	"golang.org/x/sync/semaphore"
)

func init() {
	caddy.RegisterModule(Images{})
}

// Images is `http.handlers.adapt_images`: it converts images for the class
// `adapt` gave the request. Place it after edge_cache (the directive order
// does): each variant then carries Vary on the class and the format, and
// edge_cache stores it once per class.
type Images struct {
	// MaxWidth per class, in pixels: wider images are scaled down.
	// 0 keeps the width. Defaults: full 0, lite 800, text 320.
	MaxWidth map[Class]int `json:"max_width,omitempty"`
	// Quality per class, 1–100, for JPEG and WebP. Defaults: full 85,
	// lite 60, text 40.
	Quality map[Class]int `json:"quality,omitempty"`
	// MaxBytes: larger images (or ones of unknown length) pass unconverted.
	// Default 8 MiB.
	MaxBytes int64 `json:"max_bytes,omitempty"`
	// MaxPixels: images with more pass unconverted (checked from the header,
	// before decoding). Default 24 million.
	MaxPixels int `json:"max_pixels,omitempty"`
	// Workers bounds conversions at once; Wait is how long an image waits
	// for one before it passes unconverted. Defaults 2 and 2s.
	Workers int            `json:"workers,omitempty"`
	Wait    caddy.Duration `json:"wait,omitempty"`
	// ConvertFull converts images for the full class too (to WebP where
	// accepted, at the full quality): more bytes saved, but a fast client
	// no longer gets the origin's own image. Default off: the full class
	// gets the page as the origin made it.
	ConvertFull bool `json:"convert_full,omitempty"`
	// Site labels this handler's metrics. Default "default".
	Site string `json:"site,omitempty"`

	sem    *semaphore.Weighted
	m      *imageMetrics
	logger *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (Images) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.adapt_images",
		New: func() caddy.Module { return new(Images) },
	}
}

// Provision applies defaults.
func (im *Images) Provision(ctx caddy.Context) error {
	im.logger = ctx.Logger()
	def := func(m *map[Class]int, full, lite, text int) {
		if *m == nil {
			*m = map[Class]int{}
		}
		for c, v := range map[Class]int{Full: full, Lite: lite, Text: text} {
			if _, ok := (*m)[c]; !ok {
				(*m)[c] = v
			}
		}
	}
	def(&im.MaxWidth, 0, 800, 320)
	def(&im.Quality, 85, 60, 40)
	if im.MaxBytes == 0 {
		im.MaxBytes = 8 << 20
	}
	if im.MaxPixels == 0 {
		im.MaxPixels = 24e6
	}
	if im.Workers == 0 {
		im.Workers = 2
	}
	if im.Wait == 0 {
		im.Wait = caddy.Duration(2 * time.Second)
	}
	if im.Site == "" {
		im.Site = "default"
	}
	im.sem = semaphore.NewWeighted(int64(im.Workers))
	if err := registerMetrics(ctx); err != nil {
		return err
	}
	im.m = imageMetricsFor(im.Site)
	return nil
}

// Validate checks the per-class settings.
func (im *Images) Validate() error {
	for c, q := range im.Quality {
		if q < 1 || q > 100 {
			return fmt.Errorf("adapt_images: quality %d for %s: want 1 to 100", q, c)
		}
	}
	for c, w := range im.MaxWidth {
		if w < 0 {
			return fmt.Errorf("adapt_images: max_width %d for %s: want 0 or more", w, c)
		}
	}
	return nil
}

// convertible are the image types decoded here.
func convertible(ct string) bool {
	mt, _, _ := strings.Cut(ct, ";")
	switch strings.ToLower(strings.TrimSpace(mt)) {
	case "image/jpeg", "image/png", "image/webp":
		return true
	}
	return false
}

// ServeHTTP buffers a convertible image and serves its variant.
func (im *Images) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	class := Class(r.Header.Get(ClassHeader))
	switch class {
	case Full, Lite, Text:
	default: // no adapt before this handler
		return next.ServeHTTP(w, r)
	}
	if r.Method != http.MethodGet {
		return next.ServeHTTP(w, r)
	}
	iw := &imageWriter{ResponseWriterWrapper: &caddyhttp.ResponseWriterWrapper{ResponseWriter: w}, max: im.MaxBytes}
	if class == Full && !im.ConvertFull {
		iw.max = -1 // the origin's own image, marked with Vary all the same
	}
	if err := next.ServeHTTP(iw, r); err != nil {
		return err
	}
	if !iw.buffering {
		if iw.convertible {
			im.m.outcomes["passed"].Inc()
		}
		return nil
	}
	buf := &iw.buf
	h := w.Header()
	out, ctype, outcome := im.convert(r.Context(), buf.Bytes(), class, r.Header.Get(FormatHeader))
	im.m.outcomes[outcome].Inc()
	if out == nil {
		w.WriteHeader(http.StatusOK)
		_, err := w.Write(buf.Bytes())
		return err
	}
	im.m.before.Add(float64(buf.Len()))
	im.m.after.Add(float64(len(out)))
	h.Set("Content-Type", ctype)
	h.Set("Content-Length", strconv.Itoa(len(out)))
	if et := h.Get("ETag"); et != "" {
		h.Set("ETag", `W/"`+strings.Trim(strings.TrimPrefix(et, "W/"), `"`)+"-"+string(class)+"-"+ctype[len("image/"):]+`"`)
	}
	w.WriteHeader(http.StatusOK)
	_, err := w.Write(out)
	return err
}

// imageWriter holds back a convertible image of at most max bytes (none
// when max is negative); any
// other response, or an image that turns out larger (its length unknown
// until it ends), passes through as it comes.
type imageWriter struct {
	*caddyhttp.ResponseWriterWrapper
	max         int64
	status      int
	convertible bool // the response is an image type converted here
	buffering   bool // the body is held in buf, the header not yet sent
	buf         bytes.Buffer
}

func (iw *imageWriter) WriteHeader(status int) {
	if status < 200 || iw.status != 0 {
		iw.ResponseWriterWrapper.WriteHeader(status)
		return
	}
	iw.status = status
	h := iw.Header()
	iw.convertible = status == http.StatusOK && convertible(h.Get("Content-Type")) && h.Get("Content-Encoding") == ""
	if iw.convertible {
		// Converted or not, the answer depends on the class and the
		// format: a cache must keep one per pair (adapt turns this into a
		// Vary on the client's hints for caches after the front-end).
		h.Add("Vary", ClassHeader+", "+FormatHeader)
	}
	n, err := strconv.ParseInt(h.Get("Content-Length"), 10, 64)
	iw.buffering = iw.convertible && iw.max >= 0 && (err != nil || n <= iw.max)
	if !iw.buffering {
		iw.ResponseWriterWrapper.WriteHeader(status)
	}
}

func (iw *imageWriter) Write(p []byte) (int, error) {
	if iw.status == 0 {
		iw.WriteHeader(http.StatusOK)
	}
	if !iw.buffering {
		return iw.ResponseWriterWrapper.Write(p)
	}
	if int64(iw.buf.Len()+len(p)) <= iw.max {
		return iw.buf.Write(p)
	}
	// Larger than a conversion may hold: send what was held, then the rest.
	iw.buffering = false
	iw.ResponseWriterWrapper.WriteHeader(iw.status)
	if _, err := iw.ResponseWriterWrapper.Write(iw.buf.Bytes()); err != nil {
		return 0, err
	}
	iw.buf = bytes.Buffer{}
	return iw.ResponseWriterWrapper.Write(p)
}

// ReadFrom goes through Write (the wrapper's would bypass the buffer).
func (iw *imageWriter) ReadFrom(r io.Reader) (int64, error) {
	return io.Copy(struct{ io.Writer }{iw}, r)
}

// FlushError holds while buffering: the image goes out whole or not yet.
func (iw *imageWriter) FlushError() error {
	if iw.buffering {
		return nil
	}
	return http.NewResponseController(iw.ResponseWriterWrapper.ResponseWriter).Flush()
}

// convert returns the variant, or nil when the original should be served
// (with the outcome saying why).
func (im *Images) convert(ctx context.Context, src []byte, class Class, format string) ([]byte, string, string) {
	cfg, srcFormat, err := image.DecodeConfig(bytes.NewReader(src))
	if err != nil {
		return nil, "", "error"
	}
	if cfg.Width*cfg.Height > im.MaxPixels || cfg.Width <= 0 || cfg.Height <= 0 {
		return nil, "", "skipped_limit"
	}
	wctx, cancel := context.WithTimeout(ctx, time.Duration(im.Wait))
	defer cancel()
	if err := im.sem.Acquire(wctx, 1); err != nil {
		return nil, "", "skipped_limit"
	}
	defer im.sem.Release(1)
	start := time.Now()
	defer func() { im.m.duration.Observe(time.Since(start).Seconds()) }()

	img, _, err := image.Decode(bytes.NewReader(src))
	if err != nil {
		return nil, "", "error"
	}
	if mw := im.MaxWidth[class]; mw > 0 && cfg.Width > mw {
		h := max(1, cfg.Height*mw/cfg.Width)
		dst := image.NewRGBA(image.Rect(0, 0, mw, h))
		draw.ApproxBiLinear.Scale(dst, dst.Bounds(), img, img.Bounds(), draw.Src, nil)
		img = dst
	}
	q := im.Quality[class]
	var out bytes.Buffer
	ctype := "image/jpeg"
	switch {
	case format == "webp":
		ctype = "image/webp"
		err = webp.Encode(&out, img, webp.Options{Quality: q, Method: 4})
	case srcFormat == "png" && !opaque(img):
		ctype = "image/png"
		err = (&png.Encoder{CompressionLevel: png.BestCompression}).Encode(&out, img)
	default:
		err = jpeg.Encode(&out, img, &jpeg.Options{Quality: q})
	}
	if err != nil {
		im.logger.Debug("image conversion failed", zap.Error(err))
		return nil, "", "error"
	}
	if out.Len() >= len(src) {
		return nil, "", "skipped_larger" // never grow the bytes
	}
	return out.Bytes(), ctype, "converted"
}

// opaque reports whether an image has no transparency worth keeping.
func opaque(img image.Image) bool {
	if o, ok := img.(interface{ Opaque() bool }); ok {
		return o.Opaque()
	}
	return false
}

var (
	_ caddy.Provisioner           = (*Images)(nil)
	_ caddy.Validator             = (*Images)(nil)
	_ caddyhttp.MiddlewareHandler = (*Images)(nil)
)
