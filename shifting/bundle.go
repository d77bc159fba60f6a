// Package shifting is Conductor's management component: it keeps the
// inventory and metrics of every node, decides which front-ends serve
// which site, and moves site bundles between nodes — the seed's
// "dynamically shifting functionality amongst a network of servers". It
// imports neither Caddy nor CoreDNS: the Caddy modules (caddymodule/agent)
// and the DNS plugin talk to it over HTTP.
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
// functionality: Caddy route configuration (JSON) plus static assets. On
// disk it is built from a directory holding
//
//	site.json   {"site": "shop.example", "version": "7", "routes": [ … Caddy routes … ]}
//	public/…    static assets, served where the routes say "{bundle.root}"
//
// and packed as a gzip'd tar of manifest.json and public/…; its address is
// the SHA-256 of those bytes, and a signature (Ed25519) over the address
// says who built it.

// Manifest is a bundle's description.
type Manifest struct {
	Site    string            `json:"site"`
	Version string            `json:"version"`
	Routes  json.RawMessage   `json:"routes"`
	Files   map[string]string `json:"files"` // path under public/ → SHA-256
	Built   time.Time         `json:"built"`
}

// RootPlaceholder in a bundle's routes is replaced, when a node installs
// the bundle, by the directory its public/ files were unpacked to.
const RootPlaceholder = "{bundle.root}"

const (
	maxBundleBytes   = 256 << 20
	maxBundleFiles   = 20000
	maxManifestBytes = 4 << 20
	manifestName     = "manifest.json"
	publicDir        = "public"
)

// Build packs dir into a bundle, signed with key (nil: unsigned).
func Build(dir string, key ed25519.PrivateKey) (data []byte, digest string, sig []byte, err error) {
	raw, err := os.ReadFile(filepath.Join(dir, "site.json"))
	if err != nil {
		return nil, "", nil, fmt.Errorf("bundle: %v", err)
	}
	var m Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, "", nil, fmt.Errorf("bundle: site.json: %v", err)
	}
	if err := m.check(); err != nil {
		return nil, "", nil, err
	}
	m.Files = map[string]string{}
	m.Built = time.Now().UTC().Truncate(time.Second)
	type file struct {
		name string
		data []byte
	}
	var files []file
	pub := filepath.Join(dir, publicDir)
	if _, err := os.Stat(pub); err == nil {
		err = filepath.WalkDir(pub, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			if !d.Type().IsRegular() {
				return fmt.Errorf("bundle: %s is not a regular file", p)
			}
			rel, _ := filepath.Rel(pub, p)
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
	if err := add(manifestName, mb); err != nil {
		return nil, "", nil, err
	}
	for _, f := range files {
		if err := add(publicDir+"/"+f.name, f.data); err != nil {
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

func (m *Manifest) check() error {
	switch {
	case m.Site == "" || strings.ContainsAny(m.Site, "/\\ \t\n") || len(m.Site) > 253:
		return fmt.Errorf("bundle: site %q is not a host name", m.Site)
	case m.Version == "" || len(m.Version) > 64:
		return fmt.Errorf("bundle: version must be 1-64 characters")
	case len(m.Routes) == 0:
		return errors.New("bundle: no routes")
	}
	var routes []map[string]any
	if err := json.Unmarshal(m.Routes, &routes); err != nil {
		return fmt.Errorf("bundle: routes are not a JSON array of Caddy routes: %v", err)
	}
	if len(routes) == 0 {
		return errors.New("bundle: no routes")
	}
	return nil
}

// Verified is a bundle that passed Verify.
type Verified struct {
	Manifest Manifest
	Digest   string
	files    map[string][]byte
}

// Verify checks a bundle's address (digest must match its bytes), its
// signature when pub is given, its manifest, and every file's hash; it
// bounds what a hostile bundle can make it read.
func Verify(data []byte, digest string, sig []byte, pub ed25519.PublicKey) (*Verified, error) {
	if len(data) > maxBundleBytes {
		return nil, fmt.Errorf("bundle of %d bytes exceeds %d", len(data), maxBundleBytes)
	}
	if got := Digest(data); got != digest {
		return nil, fmt.Errorf("bundle hash %s does not match its address %s", got, digest)
	}
	if pub != nil && !ed25519.Verify(pub, []byte(digest), sig) {
		return nil, errors.New("bundle signature does not verify")
	}
	gz, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("bundle: %v", err)
	}
	tr := tar.NewReader(io.LimitReader(gz, 4*maxBundleBytes))
	v := &Verified{Digest: digest, files: map[string][]byte{}}
	var manifest []byte
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
		b, err := io.ReadAll(io.LimitReader(tr, maxBundleBytes+1))
		if err != nil {
			return nil, fmt.Errorf("bundle: %v", err)
		}
		switch {
		case clean == manifestName:
			if len(b) > maxManifestBytes {
				return nil, errors.New("bundle: manifest too large")
			}
			manifest = b
		case strings.HasPrefix(clean, publicDir+"/"):
			v.files[strings.TrimPrefix(clean, publicDir+"/")] = b
		default:
			return nil, fmt.Errorf("bundle: unexpected entry %q", h.Name)
		}
	}
	if manifest == nil {
		return nil, errors.New("bundle: no manifest.json")
	}
	if err := json.Unmarshal(manifest, &v.Manifest); err != nil {
		return nil, fmt.Errorf("bundle: manifest: %v", err)
	}
	if err := v.Manifest.check(); err != nil {
		return nil, err
	}
	if len(v.files) != len(v.Manifest.Files) {
		return nil, fmt.Errorf("bundle: %d files, manifest lists %d", len(v.files), len(v.Manifest.Files))
	}
	for name, b := range v.files {
		sum := sha256.Sum256(b)
		if want, ok := v.Manifest.Files[name]; !ok || want != hex.EncodeToString(sum[:]) {
			return nil, fmt.Errorf("bundle: file %s does not match the manifest", name)
		}
	}
	return v, nil
}

// Unpack writes the bundle's public files under dir and returns its routes
// with RootPlaceholder replaced by dir.
func (v *Verified) Unpack(dir string) (json.RawMessage, error) {
	for name, b := range v.files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if !strings.HasPrefix(p, filepath.Clean(dir)+string(filepath.Separator)) {
			return nil, fmt.Errorf("bundle: unsafe path %q", name)
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return nil, err
		}
	}
	rootJSON, _ := json.Marshal(dir)
	routes := strings.ReplaceAll(string(v.Manifest.Routes), `"`+RootPlaceholder+`"`, string(rootJSON))
	return json.RawMessage(routes), nil
}
