package shifting

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// siteDir writes a site directory: site.json (site, version and the
// manifest members in rules, such as `"cache": […]`) and its files, under
// public/ unless their name starts with functions/ or data/.
func siteDir(t testing.TB, site, version, rules string, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	if rules != "" {
		rules = ", " + rules
	}
	os.WriteFile(filepath.Join(dir, "site.json"), []byte(`{"site": "`+site+`", "version": "`+version+`"`+rules+`}`), 0o644)
	for name, body := range files {
		if !strings.HasPrefix(name, "functions/") && !strings.HasPrefix(name, "data/") {
			name = "public/" + name
		}
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(body), 0o644)
	}
	return dir
}

const cacheRules = `"cache": [{"path": "/css/*", "cache_control": "public, max-age=31536000, immutable"}]`

func TestBundleBuildVerifyUnpack(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	dir := siteDir(t, "shop.example", "3", cacheRules, map[string]string{"index.html": "<h1>shop</h1>", "css/a.css": "body{}", "data/prices.json": "{}"})
	data, digest, sig, err := Build(dir, priv, "")
	if err != nil {
		t.Fatal(err)
	}
	if digest != Digest(data) || !strings.HasPrefix(digest, "sha256:") {
		t.Fatalf("digest %s", digest)
	}
	v, err := Verify(data, digest, sig, pub)
	if err != nil {
		t.Fatal(err)
	}
	if v.Manifest.Site != "shop.example" || v.Manifest.VersionNumber() != 3 || len(v.Manifest.Files) != 3 || len(v.Manifest.Cache) != 1 {
		t.Fatalf("manifest %+v", v.Manifest)
	}
	out := t.TempDir()
	m, err := Unpack(bytes.NewReader(data), out)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(out, "public/css/a.css")); string(b) != "body{}" || m.Files["data/prices.json"] == "" {
		t.Fatalf("unpacked: %q, manifest %+v", b, m)
	}
	if m2, err := ReadManifest(out); err != nil || m2.Version != "3" {
		t.Fatalf("ReadManifest: %v %+v", err, m2)
	}
}

// A bundle is data: Caddy JSON, unknown keys, bad rules and bad versions
// fail at build, each with its own message.
func TestBundleManifestIsDataOnly(t *testing.T) {
	cases := map[string]struct{ version, rules, want string }{
		"caddy routes":        {"1", `"routes": [{"handle": [{"handler": "file_server", "root": "/"}]}]`, "no Caddy config"},
		"unknown key":         {"1", `"handlers": []`, `unknown field "handlers"`},
		"syntax error's line": {"1", "\n\"cache\": [\n{\"path\": }]", "line 3"},
		"version not number":  {"v2", ``, "whole number"},
		"version zero":        {"0", ``, "whole number"},
		"redirect off-site":   {"1", `"redirects": [{"from": "/a", "to": "//evil.example/"}]`, "redirects[0].to"},
		"redirect status":     {"1", `"redirects": [{"from": "/a", "to": "/b", "status": 200}]`, "status 200"},
		"star in the middle":  {"1", `"rewrites": [{"from": "/a/*/b", "to": "/b"}]`, "only at the end"},
		"framing header":      {"1", `"headers": [{"path": "*", "set": {"Transfer-Encoding": "chunked"}}]`, "node's"},
		"header injection":    {"1", `"headers": [{"path": "*", "set": {"X-A": "a\r\nX-B: b"}}]`, "headers[0].set"},
		"module missing":      {"1", `"functions": [{"path": "/api", "module": "functions/none.wasm"}]`, "not in the bundle"},
		"module outside":      {"1", `"functions": [{"path": "/api", "module": "public/x.wasm"}]`, "functions/<name>.wasm"},
		"rollback not back":   {"3", `"rollback_from": "2"`, "a rollback goes back"},
	}
	for name, c := range cases {
		_, _, _, err := Build(siteDir(t, "shop.example", c.version, c.rules, map[string]string{"index.html": "x"}), nil, "")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error with %q", name, err, c.want)
		}
	}
	if _, _, _, err := Build(siteDir(t, "../etc", "1", "", nil), nil, ""); err == nil {
		t.Error("site ../etc: built")
	}
}

func TestBundleVerifyRejectsWhatItShould(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	otherPub, _, _ := ed25519.GenerateKey(nil)
	data, digest, sig, err := Build(siteDir(t, "shop.example", "1", "", map[string]string{"a.html": "a"}), priv, "")
	if err != nil {
		t.Fatal(err)
	}
	tampered := bytes.Clone(data)
	tampered[len(tampered)/2] ^= 1
	cases := map[string]func() error{
		"wrong hash":     func() error { _, err := Verify(data, "sha256:00", sig, pub); return err },
		"tampered bytes": func() error { _, err := Verify(tampered, digest, sig, pub); return err },
		"other signer":   func() error { _, err := Verify(data, digest, sig, otherPub); return err },
		"no signature":   func() error { _, err := Verify(data, digest, nil, pub); return err },
		"traversal path": func() error {
			d := evilBundle(t, "public/../../etc/x")
			_, err := Verify(d, Digest(d), nil, nil)
			return err
		},
		"unlisted entry":      func() error { d := evilBundle(t, "public/a"); _, err := Verify(d, Digest(d), nil, nil); return err },
		"stray entry":         func() error { d := evilBundle(t, "other.txt"); _, err := Verify(d, Digest(d), nil, nil); return err },
		"file before mainfst": func() error { d := tarOf(t, "public/a", "x"); _, err := Verify(d, Digest(d), nil, nil); return err },
		"not a gzip file":     func() error { d := []byte("hello"); _, err := Verify(d, Digest(d), nil, nil); return err },
	}
	for name, f := range cases {
		if f() == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// Unpacking into a directory writes nothing it has not checked: a file
	// whose bytes are not the manifest's fails there too.
	if _, err := Unpack(bytes.NewReader(tampered), t.TempDir()); err == nil {
		t.Error("tampered bundle unpacked")
	}
}

// tarOf packs name/body pairs in that order.
func tarOf(t testing.TB, kv ...string) []byte {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for i := 0; i+1 < len(kv); i += 2 {
		tw.WriteHeader(&tar.Header{Name: kv[i], Mode: 0o644, Size: int64(len(kv[i+1])), Typeflag: tar.TypeReg})
		tw.Write([]byte(kv[i+1]))
	}
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

// evilBundle packs a manifest and one extra entry named name.
func evilBundle(t testing.TB, name string) []byte {
	return tarOf(t, "manifest.json", `{"site":"s.example","version":"1","files":{}}`, name, "x")
}

// FuzzVerify: any bytes verify or fail cleanly.
func FuzzVerify(f *testing.F) {
	f.Add(evilBundle(f, "public/a"))
	f.Add([]byte{0x1f, 0x8b})
	f.Fuzz(func(t *testing.T, b []byte) {
		Verify(b, Digest(b), nil, nil)
	})
}

// FuzzManifest: any manifest parses or fails cleanly.
func FuzzManifest(f *testing.F) {
	f.Add([]byte(`{"site":"s.example","version":"1","redirects":[{"from":"/a/*","to":"/b/*"}],"files":{}}`))
	f.Add([]byte(`{"site":"s.example","version":"1","routes":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		parseManifest(b, "manifest.json")
	})
}
