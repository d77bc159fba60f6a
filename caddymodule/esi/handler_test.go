package esi

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"go.uber.org/zap"

	"github.com/conductor-edge/conductor/caddymodule/selfrequest"
)

func newHandler(t *testing.T) *Handler {
	t.Helper()
	h := &Handler{}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := h.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	h.logger = zap.NewNop() // the misses these tests make on purpose
	return h
}

// origin is a next handler that offers fragments through the cache
// shortcut (as edge_cache does) and answers with a template, compressed
// as Caddy's encode would have.
func origin(t *testing.T, frags map[string]string, template, encoding string) caddyhttp.Handler {
	return caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		selfrequest.Offer(r, func(host, uri string, h http.Header) ([]byte, bool) {
			b, ok := frags[uri]
			return []byte(b), ok
		})
		w.Header().Set("Surrogate-Control", `content="ESI/1.0"`)
		w.Header().Set("Content-Length", "12345")
		var body bytes.Buffer
		switch encoding {
		case "gzip":
			zw := gzip.NewWriter(&body)
			io.WriteString(zw, template)
			zw.Close()
		case "zstd":
			zw, _ := zstd.NewWriter(&body)
			io.WriteString(zw, template)
			zw.Close()
		default:
			body.WriteString(template)
		}
		if encoding != "" {
			w.Header().Set("Content-Encoding", encoding)
		}
		w.WriteHeader(http.StatusOK)
		// In small writes, as a proxy streams.
		for b := body.Bytes(); len(b) > 0; {
			n := min(len(b), 7)
			w.Write(b[:n])
			b = b[n:]
		}
		return nil
	})
}

// A page assembles from fragments the cache holds, whatever encoding the
// template came in and the client accepts; the headers say what the page
// is (not the template's length, and private).
func TestAssembleThroughEncodings(t *testing.T) {
	h := newHandler(t)
	frags := map[string]string{"/f/1": "one", "/f/2": "two"}
	tmpl := strings.Repeat("x", 2000) + `<esi:include src="/f/1"/>-<esi:try><esi:attempt><esi:include src="/f/3"/></esi:attempt><esi:except>E</esi:except></esi:try>-<esi:include src="/f/2"/>`
	want := strings.Repeat("x", 2000) + "one-E-two"
	for _, in := range []string{"", "gzip", "zstd"} {
		for _, accept := range []string{"", "gzip", "zstd"} {
			r := httptest.NewRequest(http.MethodGet, "http://shop.example/p", nil)
			r.Header.Set("Accept-Encoding", accept)
			w := httptest.NewRecorder()
			if err := h.ServeHTTP(w, r, origin(t, frags, tmpl, in)); err != nil {
				t.Fatalf("in %q, accept %q: %v", in, accept, err)
			}
			body := w.Body.Bytes()
			switch accept {
			case "gzip":
				zr, err := gzip.NewReader(bytes.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				body, _ = io.ReadAll(zr)
			case "zstd":
				zr, _ := zstd.NewReader(bytes.NewReader(body))
				body, _ = io.ReadAll(zr)
				zr.Close()
			}
			if string(body) != want {
				t.Fatalf("in %q, accept %q: page %q", in, accept, body)
			}
			hdr := w.Result().Header
			if hdr.Get("Content-Encoding") != accept || hdr.Get("Content-Length") != "" || hdr.Get("Surrogate-Control") != "" ||
				!strings.HasPrefix(hdr.Get("Cache-Control"), "private") {
				t.Fatalf("in %q, accept %q: header %v", in, accept, hdr)
			}
		}
	}
}

// A response that is not a template passes untouched, and so does one in
// an encoding esi cannot decode.
func TestNonTemplatesPass(t *testing.T) {
	h := newHandler(t)
	for _, c := range []struct {
		name string
		next caddyhttp.HandlerFunc
	}{
		{"no Surrogate-Control", func(w http.ResponseWriter, r *http.Request) error {
			io.WriteString(w, `<esi:include src="/f"/>`)
			return nil
		}},
		{"brotli", func(w http.ResponseWriter, r *http.Request) error {
			w.Header().Set("Surrogate-Control", `content="ESI/1.0"`)
			w.Header().Set("Content-Encoding", "br")
			io.WriteString(w, `<esi:include src="/f"/>`)
			return nil
		}},
		{"targeted at another surrogate", func(w http.ResponseWriter, r *http.Request) error {
			w.Header().Set("Surrogate-Control", `content="ESI/1.0";other`)
			io.WriteString(w, `<esi:include src="/f"/>`)
			return nil
		}},
	} {
		w := httptest.NewRecorder()
		if err := h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "http://shop.example/", nil), c.next); err != nil {
			t.Fatal(err)
		}
		if w.Body.String() != `<esi:include src="/f"/>` {
			t.Fatalf("%s: %q", c.name, w.Body.String())
		}
	}
}

// The origin learns the surrogate speaks ESI; a client cannot claim to.
func TestCapabilityAnnounced(t *testing.T) {
	h := newHandler(t)
	r := httptest.NewRequest(http.MethodGet, "http://shop.example/", nil)
	r.Header.Set("Surrogate-Capability", `evil="ESI/1.0"`)
	var got []string
	h.ServeHTTP(httptest.NewRecorder(), r, caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		got = r.Header.Values("Surrogate-Capability")
		return nil
	}))
	if len(got) != 1 || got[0] != capability {
		t.Fatalf("Surrogate-Capability %q", got)
	}
}

// FuzzAssemble runs arbitrary templates, in arbitrary encodings and write
// sizes, through the whole processor: parsing, the parts, the
// try/except resolution, decoding and encoding. It must not panic or
// hang, and a template without markup must come out as it went in.
func FuzzAssemble(f *testing.F) {
	f.Add(`a<esi:include src="/f/1"/>b<esi:include src="/f/2" alt="/f/1"/>`, uint8(0), uint8(3))
	f.Add(`<esi:try><esi:attempt><esi:include src="/nope"/></esi:attempt><esi:except>e</esi:except></esi:try>`, uint8(1), uint8(1))
	f.Add(`<!--esi <esi:include src="//other.example/x"/> --><esi:remove>r</esi:remove>`, uint8(2), uint8(5))
	f.Add("plain text", uint8(0), uint8(0))
	h := &Handler{}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := h.Provision(ctx); err != nil {
		f.Fatal(err)
	}
	h.logger = zap.NewNop()
	frags := map[string]string{"/f/1": "one", "/f/2": `<esi:include src="/f/1"/>`}
	f.Fuzz(func(t *testing.T, tmpl string, enc uint8, accept uint8) {
		encodings := []string{"", "gzip", "zstd"}
		r := httptest.NewRequest(http.MethodGet, "http://shop.example/p", nil)
		r.Header.Set("Accept-Encoding", encodings[accept%3])
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r, origin(t, frags, tmpl, encodings[enc%3]))
		if accept%3 == 0 && !strings.ContainsAny(tmpl, "<-") && w.Body.String() != tmpl {
			t.Fatalf("%q came out as %q", tmpl, w.Body.String())
		}
	})
}
