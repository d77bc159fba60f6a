package bundle

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"go.uber.org/zap"

	"github.com/conductor-edge/conductor/shifting"
)

// Store is a node's installed bundles, one per site. The agent installs
// and removes them; the `bundle` handler reads them on every request.
// Installing changes no Caddy config: the store outlives config reloads
// with the agent's worker, and keeps what it installed on disk, so a
// restarted node serves it again before the manager is reachable.
//
// Layout under Dir:
//
//	<site>/state.json        what is installed, and the highest version ever
//	<site>/<digest[:16]>/    an unpacked bundle (manifest.json, public/, …)
type Store struct {
	Dir    string
	Logger *zap.Logger

	// policy: who must have signed a bundle (nil key: nobody, if
	// insecure); set by the agent's config, which a reload can change.
	policy atomic.Pointer[Policy]

	mu    sync.Mutex                       // serialises installs and removals
	sites atomic.Pointer[map[string]*Site] // read on every request: copy on write
	wg    sync.WaitGroup                   // sites retiring: waiting for their requests
}

// Policy is what the node accepts.
type Policy struct {
	// Key must have signed every bundle.
	Key ed25519.PublicKey
	// InsecureUnsigned accepts bundles without a signature, when no Key is
	// set. Off by default: nodes refuse unsigned bundles.
	InsecureUnsigned bool
}

// state is a site's state.json.
type state struct {
	Digest  string `json:"digest,omitempty"`
	Version uint64 `json:"version,omitempty"`
	// High is the highest version this node ever installed for the site:
	// an older one is refused even after a rollback or a removal, so a
	// replayed bundle cannot bring back what a later one replaced.
	High uint64 `json:"high"`
	Dir  string `json:"dir,omitempty"`
}

// NewStore opens the store in dir.
func NewStore(dir string, logger *zap.Logger) *Store {
	s := &Store{Dir: dir, Logger: logger}
	empty := map[string]*Site{}
	s.sites.Store(&empty)
	s.policy.Store(&Policy{})
	return s
}

// SetPolicy sets what the node accepts from now on.
func (s *Store) SetPolicy(p Policy) { s.policy.Store(&p) }

// Get is the site's installed bundle, or nil.
func (s *Store) Get(site string) *Site { return (*s.sites.Load())[site] }

// Installed lists the installed sites and their digests.
func (s *Store) Installed() map[string]string {
	out := map[string]string{}
	for name, site := range *s.sites.Load() {
		out[name] = site.Digest
	}
	return out
}

// ErrRefused wraps the reasons a bundle is refused by policy (signature,
// version), as opposed to failing to install.
var ErrRefused = errors.New("refused")

// Install verifies the packed bundle in file (its bytes must hash to
// digest; sig must verify under the policy), unpacks it, opens its
// functions and swaps it in for the site: requests already in the old
// version finish there, new ones start on the new. A refused or failed
// install leaves the previous version serving.
func (s *Store) Install(site, digest string, sig []byte, file string) error {
	if !ValidSite(site) {
		return fmt.Errorf("site %q is not a host name", site)
	}
	pol := s.policy.Load()
	switch {
	case pol.Key != nil:
		if err := shifting.CheckSignature(digest, sig, pol.Key); err != nil {
			return fmt.Errorf("%w: %v", ErrRefused, err)
		}
	case !pol.InsecureUnsigned:
		return fmt.Errorf("%w: no signing_key is configured, and unsigned bundles are refused unless insecure_unsigned is set", ErrRefused)
	}
	if got, err := fileDigest(file); err != nil {
		return err
	} else if got != digest {
		return fmt.Errorf("bundle hash %s does not match its address %s", got, digest)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, _ := s.readState(site)
	if st.Digest == digest {
		if s.Get(site) != nil {
			return nil
		}
	}
	siteDir := filepath.Join(s.Dir, site)
	if err := os.MkdirAll(siteDir, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(siteDir, ".unpack-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	m, err := shifting.Unpack(f, tmp)
	f.Close()
	if err != nil {
		return err
	}
	if m.Site != site {
		return fmt.Errorf("bundle is for %s, not %s", m.Site, site)
	}
	v := m.VersionNumber()
	switch rb := m.RollbackNumber(); {
	case st.Digest == digest:
		// The same bundle again (its unpacked copy was lost): fine.
	case rb != 0:
		// A rollback goes back from the version installed, exactly, and
		// only when signed: a replayed rollback finds a later version
		// installed and is refused.
		if pol.Key == nil {
			return fmt.Errorf("%w: version %d is a rollback, and a rollback must be signed (signing_key)", ErrRefused, v)
		}
		if rb != st.Version {
			return fmt.Errorf("%w: a rollback from version %d, but version %d is installed", ErrRefused, rb, st.Version)
		}
	case v <= st.High:
		return fmt.Errorf("%w: version %d is not newer than version %d, the highest installed here (a rollback must be built as one: conductor bundle build -rollback-from)", ErrRefused, v, st.High)
	}
	dir := filepath.Join(siteDir, strings.TrimPrefix(digest, "sha256:")[:16])
	os.RemoveAll(dir)
	if err := os.Rename(tmp, dir); err != nil {
		return err
	}
	next, err := openSite(site, digest, dir, m, s.Logger)
	if err != nil {
		os.RemoveAll(dir)
		return err
	}
	st = state{Digest: digest, Version: v, High: max(st.High, v), Dir: dir}
	if err := s.writeState(site, st); err != nil {
		next.close()
		return err
	}
	s.swap(site, next)
	return nil
}

// Remove stops serving the site's bundle; its highest version is kept.
func (s *Store) Remove(site string) error {
	if !ValidSite(site) {
		return fmt.Errorf("site %q is not a host name", site)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.readState(site)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := s.writeState(site, state{High: st.High}); err != nil {
		return err
	}
	s.swap(site, nil)
	return nil
}

// Restore serves again what state.json says is installed, after a restart.
func (s *Store) Restore() {
	entries, _ := os.ReadDir(s.Dir)
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		site := e.Name()
		if !ValidSite(site) {
			continue
		}
		s.mu.Lock()
		st, err := s.readState(site)
		if err == nil && st.Digest != "" && s.Get(site) == nil {
			var m *shifting.Manifest
			var next *Site
			if m, err = shifting.ReadManifest(st.Dir); err == nil {
				next, err = openSite(site, st.Digest, st.Dir, m, s.Logger)
			}
			if err == nil {
				s.swap(site, next)
				s.Logger.Info("bundle restored from the local store", zap.String("site", site), zap.String("digest", st.Digest), zap.Uint64("version", st.Version))
			}
		}
		s.mu.Unlock()
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			s.Logger.Error("bundle not restored", zap.String("site", site), zap.Error(err))
		}
	}
}

// Close retires every site and waits for their requests.
func (s *Store) Close() {
	s.mu.Lock()
	for name := range *s.sites.Load() {
		s.replace(name, nil, false)
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// swap replaces the site's bundle (nil: none) and retires the old one:
// once its last request is done, its functions close and its files go
// (unless the new one is the same bundle). s.mu is held.
func (s *Store) swap(site string, next *Site) { s.replace(site, next, true) }

// replace is swap; with removeFiles false the old bundle's files stay (the
// store closes, and the next start restores them).
func (s *Store) replace(site string, next *Site, removeFiles bool) {
	cur := *s.sites.Load()
	m := maps.Clone(cur)
	if next == nil {
		delete(m, site)
	} else {
		m[site] = next
	}
	s.sites.Store(&m)
	if old := cur[site]; old != nil {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			old.retire(removeFiles && (next == nil || next.dir != old.dir))
		}()
	}
}

func (s *Store) statePath(site string) string { return filepath.Join(s.Dir, site, "state.json") }

func (s *Store) readState(site string) (state, error) {
	var st state
	b, err := os.ReadFile(s.statePath(site))
	if err != nil {
		return st, err
	}
	return st, json.Unmarshal(b, &st)
}

// writeState writes state.json atomically (a rename), so a crash leaves
// the old one or the new one.
func (s *Store) writeState(site string, st state) error {
	b, _ := json.Marshal(st)
	p := s.statePath(site)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(p+".tmp", b, 0o644); err != nil {
		return err
	}
	return os.Rename(p+".tmp", p)
}

// ValidSite reports whether site is a host name the store can keep (it
// names a directory).
func ValidSite(site string) bool {
	if site == "" || len(site) > 253 || site[0] == '.' || site[0] == '-' {
		return false
	}
	for _, c := range site {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			return false
		}
	}
	return !strings.Contains(site, "..")
}

func fileDigest(file string) (string, error) {
	f, err := os.Open(file)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}
