package edgecache

import (
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"go.uber.org/zap"
)

// Store is a cache's storage: the in-memory tier under an eviction policy,
// an optional disk tier, and the indexes that purge needs (variants of a
// URL, entries carrying a tag). Handlers with the same cache name share
// one Store, and it outlives config reloads.
type Store struct {
	name   string
	policy string
	mem    policy
	disk   *diskTier
	logger *zap.Logger

	mu       sync.RWMutex
	variants map[string]*variantSet       // primary key → its variants
	tags     map[string]map[string]*entry // tag → entries (by full key)

	evictions atomic.Int64
}

type variantSet struct {
	names []string            // the Vary field names, from the newest response
	keys  map[string]struct{} // full keys of the stored variants
}

// StoreConfig configures a Store.
type StoreConfig struct {
	Name        string
	Policy      string
	MaxBytes    int64
	DiskDir     string
	DiskMaxSize int64
	rng         *rand.Rand // tests make random eviction reproducible
}

func newStore(cfg StoreConfig, logger *zap.Logger) (*Store, error) {
	s := &Store{
		name:     cfg.Name,
		policy:   cfg.Policy,
		logger:   logger,
		variants: map[string]*variantSet{},
		tags:     map[string]map[string]*entry{},
	}
	if s.policy == "" {
		s.policy = PolicyTinyLFU
	}
	mem, err := newPolicy(cfg.Policy, cfg.MaxBytes, s.evicted, cfg.rng)
	if err != nil {
		return nil, err
	}
	s.mem = mem
	if cfg.DiskDir != "" {
		d, err := openDisk(cfg.DiskDir, cfg.DiskMaxSize, logger)
		if err != nil {
			mem.close()
			return nil, err
		}
		s.disk = d
		for _, m := range d.metas() {
			s.indexVariant(m.Primary, m.Key, m.VaryNames)
		}
	}
	return s, nil
}

// Destruct stops the policy's goroutines; caddy.UsagePool calls it when
// the last handler using this Store is unloaded.
func (s *Store) Destruct() error {
	s.mem.close()
	return nil
}

// lookup finds the stored variant of primary that matches r. The entry
// it returns may be stale; the caller decides what it may do with it.
func (s *Store) lookup(primary string, r *http.Request) *entry {
	s.mu.RLock()
	vs := s.variants[primary]
	var names []string
	if vs != nil {
		names = vs.names
	}
	s.mu.RUnlock()
	if vs == nil {
		return nil
	}
	key := primary + secondaryKey(r, names)
	if e, ok := s.mem.get(key); ok {
		return e
	}
	if s.disk == nil {
		return nil
	}
	e := s.disk.load(key)
	if e == nil {
		return nil
	}
	s.mem.set(e) // promote
	s.indexTags(e)
	return e
}

// put stores e in memory (and on disk), replacing the variant it matches.
// The policy's set replaces the old entry in one step: removing it first
// left a moment in which a reader found no entry at all, and went to the
// origin while a refresh was storing the new one (TestWarmAtStartAndRefreshAhead
// caught it, once in ten runs).
func (s *Store) put(e *entry) {
	old, had := s.mem.peek(e.key)
	s.indexVariant(e.primary, e.key, e.varyNames)
	s.indexTags(e)
	s.mem.set(e)
	if had && old != e {
		s.unindexTags(old) // only what still points at the old entry
	}
	if s.disk != nil {
		if err := s.disk.store(e); err != nil {
			s.logger.Warn("disk tier: storing entry", zap.String("key", e.primary), zap.Error(err))
		}
	}
}

// evicted is the policy's callback. The entry may already have been
// replaced under the same key; then only what the new one lacks goes.
func (s *Store) evicted(e *entry) {
	s.evictions.Add(1)
	evictionsTotal.WithLabelValues(s.name, s.policy).Inc()
	s.unindexTags(e)
	if _, ok := s.mem.peek(e.key); ok {
		return
	}
	if s.disk != nil && s.disk.has(e.key) {
		return // still served from the disk tier
	}
	s.mu.Lock()
	if vs := s.variants[e.primary]; vs != nil {
		delete(vs.keys, e.key)
		if len(vs.keys) == 0 {
			delete(s.variants, e.primary)
		}
	}
	s.mu.Unlock()
}

func (s *Store) indexVariant(primary, key string, names []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	vs := s.variants[primary]
	if vs == nil {
		vs = &variantSet{keys: map[string]struct{}{}}
		s.variants[primary] = vs
	}
	vs.names = names
	vs.keys[key] = struct{}{}
}

func (s *Store) indexTags(e *entry) {
	if len(e.tags) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range e.tags {
		m := s.tags[t]
		if m == nil {
			m = map[string]*entry{}
			s.tags[t] = m
		}
		m[e.key] = e
	}
}

func (s *Store) unindexTags(e *entry) {
	if len(e.tags) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range e.tags {
		if m := s.tags[t]; m != nil && m[e.key] == e {
			delete(m, e.key)
			if len(m) == 0 {
				delete(s.tags, t)
			}
		}
	}
}

// PurgeRequest says what to purge. Each URL is a primary key
// ("host/path?query"; a scheme is ignored); each prefix matches primary
// keys that start with it; each tag matches Surrogate-Key / Cache-Tag.
// Soft marks entries stale rather than deleting them, so they can still be
// revalidated with a 304 or served under stale-if-error.
type PurgeRequest struct {
	URLs     []string `json:"urls,omitempty"`
	Prefixes []string `json:"prefixes,omitempty"`
	Tags     []string `json:"tags,omitempty"`
	Soft     bool     `json:"soft,omitempty"`
}

// purge applies p and returns how many entries it removed or marked.
func (s *Store) purge(p PurgeRequest) int {
	keys := map[string]struct{}{}
	s.mu.RLock()
	for _, u := range p.URLs {
		if vs := s.variants[stripScheme(u)]; vs != nil {
			for k := range vs.keys {
				keys[k] = struct{}{}
			}
		}
	}
	for _, pre := range p.Prefixes {
		pre = stripScheme(pre)
		for primary, vs := range s.variants {
			if strings.HasPrefix(primary, pre) {
				for k := range vs.keys {
					keys[k] = struct{}{}
				}
			}
		}
	}
	for _, t := range p.Tags {
		for k := range s.tags[t] {
			keys[k] = struct{}{}
		}
	}
	s.mu.RUnlock()
	if len(p.Tags) > 0 && s.disk != nil {
		for _, k := range s.disk.keysWithTags(p.Tags) {
			keys[k] = struct{}{}
		}
	}
	n := 0
	for k := range keys {
		if s.purgeKey(k, p.Soft) {
			n++
		}
	}
	return n
}

func (s *Store) purgeKey(key string, soft bool) bool {
	if soft {
		e, ok := s.mem.peek(key)
		if !ok && s.disk != nil {
			e = s.disk.load(key)
			if e != nil {
				s.mem.set(e)
				s.indexTags(e)
				ok = true
			}
		}
		if ok {
			e.softPurged.Store(true)
			if s.disk != nil {
				s.disk.markSoftPurged(key)
			}
		}
		return ok
	}
	e, ok := s.mem.remove(key)
	if ok {
		s.unindexTags(e)
	}
	onDisk := s.disk != nil && s.disk.remove(key)
	s.mu.Lock()
	for primary, vs := range s.variants {
		if _, in := vs.keys[key]; in {
			delete(vs.keys, key)
			if len(vs.keys) == 0 {
				delete(s.variants, primary)
			}
			break
		}
	}
	s.mu.Unlock()
	return ok || onDisk
}

// invalidate removes every variant of primary: RFC 9111 §4.4, after a
// successful unsafe request to the URL.
func (s *Store) invalidate(primary string) {
	s.purge(PurgeRequest{URLs: []string{primary}})
}

func stripScheme(u string) string {
	if i := strings.Index(u, "://"); i >= 0 {
		u = u[i+3:]
	}
	if i := strings.IndexByte(u, '/'); i >= 0 {
		return strings.ToLower(u[:i]) + u[i:]
	}
	return strings.ToLower(u)
}

// Stats is a Store's summary, for the admin API.
type Stats struct {
	Name      string `json:"name"`
	Policy    string `json:"policy"`
	Entries   int    `json:"entries"`
	Bytes     int64  `json:"bytes"`
	Evictions int64  `json:"evictions"`
	DiskBytes int64  `json:"disk_bytes,omitempty"`
}

func (s *Store) stats() Stats {
	n := 0
	s.mem.each(func(*entry) bool { n++; return true })
	st := Stats{Name: s.name, Policy: s.policy, Entries: n, Bytes: s.mem.usedBytes(), Evictions: s.evictions.Load()}
	if s.disk != nil {
		st.DiskBytes = s.disk.usedBytes()
	}
	return st
}
