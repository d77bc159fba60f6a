package bundle

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/conductor-edge/conductor/caddymodule/edgefn"
	"github.com/conductor-edge/conductor/shifting"
)

// Site is one installed bundle of a site: immutable once open, shared by
// every request that started on it, closed when the next version has
// replaced it and the last of those requests is done.
type Site struct {
	Name, Digest string
	Manifest     *shifting.Manifest

	dir    string
	public *os.Root // dir/public, or nil
	rules  rules
	fns    []function

	mu       sync.Mutex
	inflight sync.WaitGroup
	retired  bool
}

type function struct {
	path pattern
	h    *edgefn.Handler
}

// openSite opens an unpacked bundle: its public files, its rules, and its
// functions, each compiled and warmed (so the swap to it is instant).
func openSite(name, digest, dir string, m *shifting.Manifest, logger *zap.Logger) (*Site, error) {
	s := &Site{Name: name, Digest: digest, Manifest: m, dir: dir, rules: compileRules(m)}
	if root, err := os.OpenRoot(filepath.Join(dir, "public")); err == nil {
		s.public = root
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	data := filepath.Join(dir, "data")
	if _, err := os.Stat(data); err != nil {
		data = ""
	}
	for _, f := range m.Functions {
		h := &edgefn.Handler{
			Module: filepath.Join(dir, filepath.FromSlash(f.Module)), Data: data, Env: f.Env,
			MaxMemory: f.MaxMemory, MaxRequestBody: f.MaxRequestBody, MaxResponse: f.MaxResponse, Instances: f.Instances,
			Name: name + "/" + strings.TrimSuffix(path.Base(f.Module), ".wasm"),
		}
		if f.Timeout != "" {
			d, _ := time.ParseDuration(f.Timeout)
			h.Timeout = caddy.Duration(d)
		}
		if err := h.Open(logger.With(zap.String("site", name))); err != nil {
			s.close()
			return nil, fmt.Errorf("function %s: %w", f.Module, err)
		}
		s.fns = append(s.fns, function{compilePattern(f.Path), h})
	}
	return s, nil
}

// acquire marks a request as using s; false once s is retired.
func (s *Site) acquire() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.retired {
		return false
	}
	s.inflight.Add(1)
	return true
}

func (s *Site) release() { s.inflight.Done() }

// retire waits for the requests using s, then closes it, and removes its
// files if asked.
func (s *Site) retire(removeFiles bool) {
	s.mu.Lock()
	s.retired = true
	s.mu.Unlock()
	s.inflight.Wait()
	s.close()
	if removeFiles {
		os.RemoveAll(s.dir)
	}
}

func (s *Site) close() {
	for _, f := range s.fns {
		f.h.Cleanup()
	}
	if s.public != nil {
		s.public.Close()
	}
}

// answer says who answered a request, for the metrics.
type answer string

const (
	answerRedirect answer = "redirect"
	answerFunction answer = "function"
	answerStatic   answer = "static"
	answerNext     answer = "next"
	answerNotFound answer = "not_found"
)

// serve answers r from the bundle, or hands it to next: redirects first,
// then rewrites, then functions, then static files; header rules (matched
// on the path as asked) apply to whatever answers.
func (s *Site) serve(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) (answer, error) {
	p := r.URL.Path
	if hs := s.rules.headersFor(p); len(hs) > 0 {
		w = &headerWriter{ResponseWriterWrapper: &caddyhttp.ResponseWriterWrapper{ResponseWriter: w}, rules: hs}
	}
	if to, status, ok := s.rules.redirect(p); ok {
		// The query goes along, unless the target has its own.
		if r.URL.RawQuery != "" && !strings.Contains(to, "?") {
			to += "?" + r.URL.RawQuery
		}
		http.Redirect(w, r, to, status)
		return answerRedirect, nil
	}
	if np := s.rules.rewrite(p); np != p {
		r.URL.Path, r.URL.RawPath = np, ""
		p = np
	}
	for _, f := range s.fns {
		if _, ok := f.path.match(p); ok {
			return answerFunction, f.h.ServeHTTP(w, r, next)
		}
	}
	if ok, err := s.serveFile(w, r, p); ok {
		return answerStatic, err
	}
	if s.Manifest.NoOrigin {
		// No origin to ask: a 404, which fallback (before this handler)
		// turns into the site's page.
		return answerNotFound, caddyhttp.Error(http.StatusNotFound, fmt.Errorf("%s has no origin, and its bundle has no %s", s.Name, p))
	}
	return answerNext, next.ServeHTTP(w, r)
}

// serveFile serves p from the bundle's public files, if it has it. The
// lookup is in the manifest's file list, so a path the bundle does not
// hold costs no filesystem access, and nothing outside the bundle's files
// can be named.
func (s *Site) serveFile(w http.ResponseWriter, r *http.Request, p string) (bool, error) {
	clean := path.Clean(p)
	if strings.HasSuffix(p, "/") && clean != "/" {
		clean += "/"
	}
	name := strings.TrimPrefix(clean, "/")
	if name == "" || strings.HasSuffix(name, "/") {
		name += "index.html"
	}
	sum, ok := s.Manifest.Files["public/"+name]
	if !ok {
		if _, dir := s.Manifest.Files["public/"+name+"/index.html"]; dir {
			// A directory: its index, at the URL with the slash, as
			// Caddy's file_server does.
			u := *r.URL
			u.Path += "/"
			http.Redirect(w, r, u.RequestURI(), http.StatusPermanentRedirect)
			return true, nil
		}
		return false, nil
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		return true, caddyhttp.Error(http.StatusMethodNotAllowed, fmt.Errorf("%s %s: a static file of the bundle", r.Method, p))
	}
	f, err := s.public.Open(name)
	if err != nil {
		return true, caddyhttp.Error(http.StatusInternalServerError, err)
	}
	defer f.Close()
	hdr := w.Header()
	hdr.Set("Etag", `"`+sum[:24]+`"`)
	if cc := s.rules.cacheControl(clean); cc != "" {
		hdr.Set("Cache-Control", cc)
	}
	http.ServeContent(w, r, name, s.Manifest.Built, f)
	return true, nil
}
