// Package shifting is Conductor's management component: it keeps the
// inventory and metrics of every node, decides which front-ends serve
// which site, and moves site bundles between nodes — the seed's
// "dynamically shifting functionality amongst a network of servers". It
// imports neither Caddy nor CoreDNS: the Caddy modules (caddymodule/agent,
// caddymodule/bundle) and the DNS plugin talk to it over HTTP.
package shifting

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// A site bundle is a versioned, content-addressed unit of site
// functionality, and it is data: a front-end's `bundle` handler serves it
// inside the operator's own handler chain, so it holds no Caddy config
// (a bundle that could name any handler and any upstream could serve the
// node's disk or proxy to its admin endpoint). It is built from a
// directory holding
//
//	site.json      the manifest's source: site, version and the rules below
//	public/…       static files, served at their path
//	functions/…    WebAssembly modules the manifest binds to paths
//	data/…         files the functions read (read_data); never served
//
// and packed as a gzip'd tar of manifest.json first, then the files; its
// address is the SHA-256 of those bytes, and a signature (Ed25519) over
// the address says who built it.

// Manifest is a bundle's description.
type Manifest struct {
	Site string `json:"site"`
	// Version is a whole number that grows with every build of the site:
	// a node never installs a lower one than it has, unless the bundle is
	// a signed rollback from the version installed (RollbackFrom).
	Version      string `json:"version"`
	RollbackFrom string `json:"rollback_from,omitempty"`
	// NoOrigin says the site has no origin at all (the seed: the
	// originating server "may not exist in a physical sense"): a path the
	// bundle does not cover is a 404, not a request to the origin.
	NoOrigin  bool          `json:"no_origin,omitempty"`
	Redirects []Redirect    `json:"redirects,omitempty"`
	Rewrites  []Rewrite     `json:"rewrites,omitempty"`
	Headers   []HeaderRule  `json:"headers,omitempty"`
	Cache     []CacheRule   `json:"cache,omitempty"`
	Functions []FunctionDef `json:"functions,omitempty"`
	// Files maps every packed file (public/…, functions/…, data/…) to its
	// SHA-256; Build fills it in.
	Files map[string]string `json:"files"`
	Built time.Time         `json:"built"`
}

// Path patterns in the rules are "/exact", "/prefix/*" or "*" (every path).

// Redirect answers From with a redirect to To (a path, or an http(s) URL);
// with a "/prefix/*" From and a To ending in "*", the rest of the path is
// carried over.
type Redirect struct {
	From   string `json:"from"`
	To     string `json:"to"`
	Status int    `json:"status,omitempty"` // 301, 302 (default), 303, 307, 308
}

// Rewrite changes the request's path before the bundle (and the handlers
// after it) see it, with To's "*" as in Redirect.
type Rewrite struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// HeaderRule sets and deletes response headers on the paths it matches,
// whoever answers (the bundle, a function or the origin).
type HeaderRule struct {
	Path   string            `json:"path"`
	Set    map[string]string `json:"set,omitempty"`
	Delete []string          `json:"delete,omitempty"`
}

// CacheRule is the Cache-Control of the bundle's static files on Path
// (the first rule that matches).
type CacheRule struct {
	Path         string `json:"path"`
	CacheControl string `json:"cache_control"`
}

// FunctionDef binds an edge function (a module under functions/) to a
// path; its limits are those of the edge_function handler.
type FunctionDef struct {
	Path           string            `json:"path"`
	Module         string            `json:"module"`
	Env            map[string]string `json:"env,omitempty"`
	MaxMemory      int64             `json:"max_memory,omitempty"`
	Timeout        string            `json:"timeout,omitempty"`
	MaxRequestBody int64             `json:"max_request_body,omitempty"`
	MaxResponse    int64             `json:"max_response,omitempty"`
	Instances      int               `json:"instances,omitempty"`
}

// The bounds on what a bundle can make a node read, write and hold.
const (
	MaxBundleBytes   = 256 << 20 // packed
	maxUnpackedBytes = 1 << 30
	maxFileBytes     = 256 << 20
	maxBundleFiles   = 20000
	maxManifestBytes = 4 << 20
	maxRules         = 1000
	manifestName     = "manifest.json"
)

// bundleDirs are the directories a bundle's files may be in.
var bundleDirs = []string{"public", "functions", "data"}

// Build packs dir into a bundle, signed with key (nil: unsigned).
// rollbackFrom, when not empty, makes it a rollback from that version.
func Build(dir string, key ed25519.PrivateKey, rollbackFrom string) (data []byte, digest string, sig []byte, err error) {
	raw, err := os.ReadFile(filepath.Join(dir, "site.json"))
	if err != nil {
		return nil, "", nil, fmt.Errorf("bundle: %v", err)
	}
	m, err := parseManifest(raw, "site.json")
	if err != nil {
		return nil, "", nil, err
	}
	if rollbackFrom != "" {
		m.RollbackFrom = rollbackFrom
	}
	m.Files = map[string]string{}
	m.Built = time.Now().UTC().Truncate(time.Second)
	type file struct {
		name string
		data []byte
	}
	var files []file
	for _, top := range bundleDirs {
		root := filepath.Join(dir, top)
		if _, err := os.Stat(root); err != nil {
			continue
		}
		err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			if !d.Type().IsRegular() {
				return fmt.Errorf("bundle: %s is not a regular file", p)
			}
			rel, _ := filepath.Rel(dir, p)
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			m.Files[filepath.ToSlash(rel)] = hex.EncodeToString(sum[:])
			files = append(files, file{filepath.ToSlash(rel), b})
			return nil
		})
		if err != nil {
			return nil, "", nil, err
		}
	}
	if err := m.checkFiles(); err != nil {
		return nil, "", nil, err
	}
	slices.SortFunc(files, func(a, b file) int { return strings.Compare(a.name, b.name) })
	mb, _ := json.MarshalIndent(m, "", "  ")
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	add := func(name string, b []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), ModTime: m.Built, Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err := tw.Write(b)
		return err
	}
	// The manifest first: a node checks each file against it as the file
	// streams past, and refuses one it does not list before writing it.
	if err := add(manifestName, mb); err != nil {
		return nil, "", nil, err
	}
	for _, f := range files {
		if err := add(f.name, f.data); err != nil {
			return nil, "", nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, "", nil, err
	}
	if err := gz.Close(); err != nil {
		return nil, "", nil, err
	}
	data = buf.Bytes()
	digest = Digest(data)
	if key != nil {
		sig = ed25519.Sign(key, []byte(digest))
	}
	return data, digest, sig, nil
}

// Digest is a bundle's content address.
func Digest(data []byte) string {
	sum := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// CheckSignature checks sig over digest against pub.
func CheckSignature(digest string, sig []byte, pub ed25519.PublicKey) error {
	if len(sig) == 0 {
		return errors.New("bundle is not signed")
	}
	if !ed25519.Verify(pub, []byte(digest), sig) {
		return errors.New("bundle signature does not verify")
	}
	return nil
}

// Verified is a bundle that passed Verify.
type Verified struct {
	Manifest Manifest
	Digest   string
}

// Verify checks a bundle held in memory: its address (digest must match
// its bytes), its signature when pub is given, its manifest, and every
// file's hash.
func Verify(data []byte, digest string, sig []byte, pub ed25519.PublicKey) (*Verified, error) {
	if len(data) > MaxBundleBytes {
		return nil, fmt.Errorf("bundle of %d bytes exceeds %d", len(data), MaxBundleBytes)
	}
	if got := Digest(data); got != digest {
		return nil, fmt.Errorf("bundle hash %s does not match its address %s", got, digest)
	}
	if pub != nil {
		if err := CheckSignature(digest, sig, pub); err != nil {
			return nil, err
		}
	}
	m, err := Unpack(bytes.NewReader(data), "")
	if err != nil {
		return nil, err
	}
	return &Verified{Manifest: *m, Digest: digest}, nil
}

// Unpack reads a packed bundle from r and checks it as it streams: the
// manifest first, then each file against the manifest's hash, within the
// bounds above. With dir set, the files are written beneath it (which
// must be empty: the caller renames it into place once Unpack succeeds);
// memory stays bounded by the manifest, whatever the bundle's size.
func Unpack(r io.Reader, dir string) (*Manifest, error) {
	gz, err := gzip.NewReader(io.LimitReader(r, MaxBundleBytes+1))
	if err != nil {
		return nil, fmt.Errorf("bundle: %v", err)
	}
	tr := tar.NewReader(io.LimitReader(gz, maxUnpackedBytes+maxManifestBytes))
	var m *Manifest
	seen := map[string]bool{}
	for n := 0; ; n++ {
		if n > maxBundleFiles {
			return nil, errors.New("bundle: too many files")
		}
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("bundle: %v", err)
		}
		if h.Typeflag != tar.TypeReg {
			return nil, fmt.Errorf("bundle: %s is not a regular file", h.Name)
		}
		clean := path.Clean(h.Name)
		if clean != h.Name || strings.HasPrefix(clean, "/") || strings.HasPrefix(clean, "..") {
			return nil, fmt.Errorf("bundle: unsafe path %q", h.Name)
		}
		if m == nil {
			if clean != manifestName {
				return nil, fmt.Errorf("bundle: %s before manifest.json (the manifest comes first)", h.Name)
			}
			raw, err := io.ReadAll(io.LimitReader(tr, maxManifestBytes+1))
			if err != nil {
				return nil, fmt.Errorf("bundle: %v", err)
			}
			if len(raw) > maxManifestBytes {
				return nil, errors.New("bundle: manifest too large")
			}
			if m, err = parseManifest(raw, manifestName); err != nil {
				return nil, err
			}
			if err := m.checkFiles(); err != nil {
				return nil, err
			}
			if dir != "" {
				if err := os.WriteFile(filepath.Join(dir, manifestName), raw, 0o644); err != nil {
					return nil, err
				}
			}
			continue
		}
		want, ok := m.Files[clean]
		if !ok || seen[clean] {
			return nil, fmt.Errorf("bundle: unexpected entry %q", h.Name)
		}
		seen[clean] = true
		if h.Size > maxFileBytes {
			return nil, fmt.Errorf("bundle: %s: %d bytes exceeds %d", clean, h.Size, maxFileBytes)
		}
		sum := sha256.New()
		var dst io.Writer = sum
		var f *os.File
		if dir != "" {
			p := filepath.Join(dir, filepath.FromSlash(clean))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return nil, err
			}
			if f, err = os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644); err != nil {
				return nil, err
			}
			dst = io.MultiWriter(sum, f)
		}
		_, err = io.Copy(dst, io.LimitReader(tr, maxFileBytes))
		if f != nil {
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			return nil, fmt.Errorf("bundle: %s: %v", clean, err)
		}
		if hex.EncodeToString(sum.Sum(nil)) != want {
			return nil, fmt.Errorf("bundle: file %s does not match the manifest", clean)
		}
	}
	if m == nil {
		return nil, errors.New("bundle: no manifest.json")
	}
	if len(seen) != len(m.Files) {
		return nil, fmt.Errorf("bundle: %d files, manifest lists %d", len(seen), len(m.Files))
	}
	return m, nil
}

// ReadManifest reads the manifest an unpacked bundle keeps in dir.
func ReadManifest(dir string) (*Manifest, error) {
	raw, err := os.ReadFile(filepath.Join(dir, manifestName))
	if err != nil {
		return nil, err
	}
	return parseManifest(raw, manifestName)
}
