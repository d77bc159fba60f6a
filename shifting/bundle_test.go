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

// siteDir writes a site directory: site.json and public/ files.
func siteDir(t testing.TB, site, version, routes string, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "site.json"), []byte(`{"site": "`+site+`", "version": "`+version+`", "routes": `+routes+`}`), 0o644)
	for name, body := range files {
		p := filepath.Join(dir, "public", name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(body), 0o644)
	}
	return dir
}

const fileRoutes = `[{"handle": [{"handler": "file_server", "root": "{bundle.root}"}]}]`

func TestBundleBuildVerifyUnpack(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	dir := siteDir(t, "shop.example", "3", fileRoutes, map[string]string{"index.html": "<h1>shop</h1>", "css/a.css": "body{}"})
	data, digest, sig, err := Build(dir, priv)
	if err != nil {
		t.Fatal(err)
	}
	// Content-addressed and reproducible.
	data2, digest2, _, _ := Build(dir, priv)
	if digest != Digest(data) || !strings.HasPrefix(digest, "sha256:") || (digest2 != digest && bytes.Equal(data, data2)) {
		t.Fatalf("digest %s", digest)
	}
	v, err := Verify(data, digest, sig, pub)
	if err != nil {
		t.Fatal(err)
	}
	if v.Manifest.Site != "shop.example" || v.Manifest.Version != "3" || len(v.Manifest.Files) != 2 {
		t.Fatalf("manifest %+v", v.Manifest)
	}
	out := t.TempDir()
	routes, err := v.Unpack(out)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(out, "css/a.css")); string(b) != "body{}" || !strings.Contains(string(routes), `"root": "`+out+`"`) {
		t.Fatalf("unpacked: %q, routes %s", b, routes)
	}
}

func TestBundleVerifyRejectsWhatItShould(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	otherPub, _, _ := ed25519.GenerateKey(nil)
	data, digest, sig, err := Build(siteDir(t, "shop.example", "1", fileRoutes, map[string]string{"a.html": "a"}), priv)
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
		"stray entry":     func() error { d := evilBundle(t, "other.txt"); _, err := Verify(d, Digest(d), nil, nil); return err },
		"not a gzip file": func() error { d := []byte("hello"); _, err := Verify(d, Digest(d), nil, nil); return err },
	}
	for name, f := range cases {
		if f() == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// Broken route JSON and a bad site name fail at build.
	for _, routes := range []string{`{"not": "an array"}`, `[`, `[]`} {
		if _, _, _, err := Build(siteDir(t, "shop.example", "1", routes, nil), nil); err == nil {
			t.Errorf("routes %s: built", routes)
		}
	}
	if _, _, _, err := Build(siteDir(t, "../etc", "1", fileRoutes, nil), nil); err == nil {
		t.Error("site ../etc: built")
	}
}

// evilBundle packs a manifest and one extra entry named name.
func evilBundle(t *testing.T, name string) []byte {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	m := []byte(`{"site":"s.example","version":"1","routes":[{}],"files":{}}`)
	tw.WriteHeader(&tar.Header{Name: "manifest.json", Mode: 0o644, Size: int64(len(m)), Typeflag: tar.TypeReg})
	tw.Write(m)
	tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: 1, Typeflag: tar.TypeReg})
	tw.Write([]byte("x"))
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

// FuzzVerify: any bytes verify or fail cleanly.
func FuzzVerify(f *testing.F) {
	f.Add(evilBundle(&testing.T{}, "public/a"))
	f.Add([]byte{0x1f, 0x8b})
	f.Fuzz(func(t *testing.T, b []byte) {
		Verify(b, Digest(b), nil, nil)
	})
}
