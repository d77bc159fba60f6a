package bundle

import (
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/conductor-edge/conductor/shifting"
)

// build writes a site directory and packs it into a file, as `conductor
// bundle build` does; it returns the file, the digest and the signature.
func build(t *testing.T, key ed25519.PrivateKey, site, version, rollbackFrom, rules string, files map[string]string) (string, string, []byte) {
	t.Helper()
	dir := t.TempDir()
	if rules != "" {
		rules = ", " + rules
	}
	os.WriteFile(filepath.Join(dir, "site.json"), []byte(`{"site": "`+site+`", "version": "`+version+`"`+rules+`}`), 0o644)
	for name, body := range files {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(body), 0o644)
	}
	data, digest, sig, err := shifting.Build(dir, key, rollbackFrom)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "b.bundle")
	os.WriteFile(file, data, 0o644)
	return file, digest, sig
}

func newTestStore(t *testing.T, pol Policy) *Store {
	s := NewStore(t.TempDir(), zap.NewNop())
	s.SetPolicy(pol)
	t.Cleanup(s.Close)
	return s
}

func page(v string) map[string]string { return map[string]string{"public/index.html": v} }

// Nodes refuse unsigned bundles unless insecure_unsigned, and bundles
// signed by another key always.
func TestStoreRefusesUnsigned(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	_, other, _ := ed25519.GenerateKey(nil)
	file, digest, _ := build(t, nil, "a.example", "1", "", "", page("v1"))
	for name, pol := range map[string]Policy{"no key": {}, "a key": {Key: pub}} {
		s := newTestStore(t, pol)
		if err := s.Install("a.example", digest, nil, file); !errors.Is(err, ErrRefused) {
			t.Errorf("%s: unsigned bundle: %v", name, err)
		}
	}
	s := newTestStore(t, Policy{InsecureUnsigned: true})
	if err := s.Install("a.example", digest, nil, file); err != nil || s.Get("a.example") == nil {
		t.Fatalf("insecure_unsigned: %v", err)
	}
	file, digest, sig := build(t, other, "a.example", "1", "", "", page("v1"))
	s = newTestStore(t, Policy{Key: pub})
	if err := s.Install("a.example", digest, sig, file); !errors.Is(err, ErrRefused) {
		t.Errorf("other signer: %v", err)
	}
	file, digest, sig = build(t, priv, "a.example", "1", "", "", page("v1"))
	if err := s.Install("b.example", digest, sig, file); err == nil || !strings.Contains(err.Error(), "not b.example") {
		t.Errorf("bundle for another site: %v", err)
	}
	if err := s.Install("../etc", digest, sig, file); err == nil {
		t.Error("site ../etc installed")
	}
	if err := s.Install("a.example", "sha256:"+strings.Repeat("0", 64), sig, file); err == nil {
		t.Error("wrong digest installed")
	}
}

// A node never goes back a version, unless the rollback is signed and
// names the version installed; a replayed rollback is refused.
func TestStoreVersionsOnlyGoForward(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	s := newTestStore(t, Policy{Key: pub})
	install := func(version, rollbackFrom, body string) error {
		file, digest, sig := build(t, priv, "a.example", version, rollbackFrom, "", page(body))
		return s.Install("a.example", digest, sig, file)
	}
	for _, v := range []string{"1", "2"} {
		if err := install(v, "", "v"+v); err != nil {
			t.Fatalf("v%s: %v", v, err)
		}
	}
	if err := install("1", "", "old"); !errors.Is(err, ErrRefused) {
		t.Fatalf("older version: %v", err)
	}
	if err := install("2", "", "other v2"); !errors.Is(err, ErrRefused) {
		t.Fatalf("same version, other content: %v", err)
	}
	if err := install("1", "3", "rollback"); !errors.Is(err, ErrRefused) {
		t.Fatalf("rollback from a version not installed: %v", err)
	}
	if err := install("1", "2", "rollback"); err != nil {
		t.Fatalf("signed rollback: %v", err)
	}
	if m := s.Get("a.example").Manifest; m.Version != "1" {
		t.Fatalf("after the rollback: version %s", m.Version)
	}
	// v2 again is not newer than the highest ever installed.
	if err := install("2", "", "v2 replayed"); !errors.Is(err, ErrRefused) {
		t.Fatalf("replayed v2: %v", err)
	}
	if err := install("3", "", "v3"); err != nil {
		t.Fatalf("v3: %v", err)
	}
	// A rollback needs a key: with insecure_unsigned alone it is refused.
	s2 := newTestStore(t, Policy{InsecureUnsigned: true})
	file, digest, _ := build(t, nil, "a.example", "5", "", "", page("v5"))
	s2.Install("a.example", digest, nil, file)
	file, digest, _ = build(t, priv, "a.example", "4", "5", "", page("v4"))
	if err := s2.Install("a.example", digest, nil, file); !errors.Is(err, ErrRefused) {
		t.Fatalf("unsigned rollback: %v", err)
	}
}

// A restarted node serves what it had, and still refuses what is older.
func TestStoreRestoresAfterRestart(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	dir := t.TempDir()
	s := NewStore(dir, zap.NewNop())
	s.SetPolicy(Policy{Key: pub})
	file, digest, sig := build(t, priv, "a.example", "2", "", "", page("v2"))
	if err := s.Install("a.example", digest, sig, file); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = NewStore(dir, zap.NewNop())
	s.SetPolicy(Policy{Key: pub})
	defer s.Close()
	s.Restore()
	if got := s.Installed()["a.example"]; got != digest {
		t.Fatalf("restored %q, want %s", got, digest)
	}
	file, digest, sig = build(t, priv, "a.example", "1", "", "", page("v1"))
	if err := s.Install("a.example", digest, sig, file); !errors.Is(err, ErrRefused) {
		t.Fatalf("older after restart: %v", err)
	}
	// Removing keeps the highest version.
	if err := s.Remove("a.example"); err != nil || s.Get("a.example") != nil {
		t.Fatalf("remove: %v", err)
	}
	if err := s.Install("a.example", digest, sig, file); !errors.Is(err, ErrRefused) {
		t.Fatalf("older after removal: %v", err)
	}
}
