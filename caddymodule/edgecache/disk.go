package edgecache

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
)

// diskTier keeps entries in files under a directory, so the cache survives
// a restart: at start the directory is scanned and indexed, and an entry
// the memory tier lacks is read from disk and promoted. One file per entry,
// named by the SHA-256 of its key, holding a length-prefixed JSON header
// and the body; written to a temporary file and renamed, so a crash leaves
// either the old or the new entry, never half of one.
type diskTier struct {
	dir    string
	max    int64
	logger *zap.Logger

	mu    sync.Mutex
	index map[string]*diskMeta // by full key
	used  int64
}

type diskMeta struct {
	Key          string        `json:"key"`
	Primary      string        `json:"primary"`
	Status       int           `json:"status"`
	Header       http.Header   `json:"header"`
	ReqHeader    http.Header   `json:"req_header,omitempty"`
	RequestTime  time.Time     `json:"request_time"`
	ResponseTime time.Time     `json:"response_time"`
	InitialAge   time.Duration `json:"initial_age"`
	Lifetime     time.Duration `json:"lifetime"`
	VaryNames    []string      `json:"vary,omitempty"`
	Tags         []string      `json:"tags,omitempty"`
	SoftPurged   bool          `json:"soft_purged,omitempty"`
	BodyLen      int64         `json:"body_len"`

	fileSize int64
}

const (
	diskSuffix       = ".entry"
	maxDiskHeaderLen = 1 << 20
)

func openDisk(dir string, maxBytes int64, logger *zap.Logger) (*diskTier, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("disk tier: %v", err)
	}
	d := &diskTier{dir: dir, max: maxBytes, logger: logger, index: map[string]*diskMeta{}}
	names, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("disk tier: %v", err)
	}
	for _, de := range names {
		name := de.Name()
		path := filepath.Join(dir, name)
		if strings.HasPrefix(name, ".tmp-") { // left by a crash mid-write
			os.Remove(path)
			continue
		}
		if !strings.HasSuffix(name, diskSuffix) {
			continue
		}
		m, err := readDiskMeta(path)
		if err != nil {
			logger.Warn("disk tier: dropping unreadable entry", zap.String("file", path), zap.Error(err))
			os.Remove(path)
			continue
		}
		d.index[m.Key] = m
		d.used += m.fileSize
	}
	d.shrink()
	return d, nil
}

func (d *diskTier) path(key string) string {
	sum := sha256.Sum256([]byte(key))
	return filepath.Join(d.dir, hex.EncodeToString(sum[:])+diskSuffix)
}

func readDiskMeta(path string) (*diskMeta, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m, _, err := decodeDiskHeader(f)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	m.fileSize = st.Size()
	if hdr := st.Size() - m.BodyLen; hdr < 4 {
		return nil, errors.New("truncated body")
	}
	return m, nil
}

// decodeDiskHeader reads the length-prefixed JSON header of an entry file.
func decodeDiskHeader(r io.Reader) (*diskMeta, int64, error) {
	var lenb [4]byte
	if _, err := io.ReadFull(r, lenb[:]); err != nil {
		return nil, 0, fmt.Errorf("reading header length: %v", err)
	}
	n := binary.BigEndian.Uint32(lenb[:])
	if n == 0 || n > maxDiskHeaderLen {
		return nil, 0, fmt.Errorf("header length %d out of range", n)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, 0, fmt.Errorf("reading header: %v", err)
	}
	m := new(diskMeta)
	if err := json.Unmarshal(buf, m); err != nil {
		return nil, 0, fmt.Errorf("decoding header: %v", err)
	}
	if m.Key == "" || m.BodyLen < 0 {
		return nil, 0, errors.New("header without key or with negative body length")
	}
	return m, int64(4 + n), nil
}

func (d *diskTier) store(e *entry) error {
	m := &diskMeta{
		Key: e.key, Primary: e.primary, Status: e.status, Header: e.header, ReqHeader: e.reqHeader,
		RequestTime: e.requestTime, ResponseTime: e.responseTime, InitialAge: e.initialAge,
		Lifetime: e.lifetime, VaryNames: e.varyNames, Tags: e.tags, SoftPurged: e.softPurged.Load(),
		BodyLen: int64(len(e.body)),
	}
	hdr, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if len(hdr) > maxDiskHeaderLen {
		return fmt.Errorf("header of %d bytes is too large for the disk tier", len(hdr))
	}
	m.fileSize = int64(4 + len(hdr) + len(e.body))
	if m.fileSize > d.max {
		return nil // larger than the whole tier: memory only
	}
	f, err := os.CreateTemp(d.dir, ".tmp-")
	if err != nil {
		return err
	}
	var lenb [4]byte
	binary.BigEndian.PutUint32(lenb[:], uint32(len(hdr)))
	_, err = f.Write(lenb[:])
	if err == nil {
		_, err = f.Write(hdr)
	}
	if err == nil {
		_, err = f.Write(e.body)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), d.path(e.key))
	}
	if err != nil {
		os.Remove(f.Name())
		return err
	}
	d.mu.Lock()
	if old := d.index[e.key]; old != nil {
		d.used -= old.fileSize
	}
	d.index[e.key] = m
	d.used += m.fileSize
	d.mu.Unlock()
	d.shrink()
	return nil
}

// shrink removes the oldest entries while the tier is over its bound.
func (d *diskTier) shrink() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.used <= d.max {
		return
	}
	metas := make([]*diskMeta, 0, len(d.index))
	for _, m := range d.index {
		metas = append(metas, m)
	}
	slices.SortFunc(metas, func(a, b *diskMeta) int { return a.ResponseTime.Compare(b.ResponseTime) })
	for _, m := range metas {
		if d.used <= d.max {
			break
		}
		os.Remove(d.path(m.Key))
		delete(d.index, m.Key)
		d.used -= m.fileSize
	}
}

// load reads an entry back; nil if it is absent or unreadable.
func (d *diskTier) load(key string) *entry {
	d.mu.Lock()
	_, ok := d.index[key]
	d.mu.Unlock()
	if !ok {
		return nil
	}
	f, err := os.Open(d.path(key))
	if err != nil {
		return nil
	}
	defer f.Close()
	m, _, err := decodeDiskHeader(f)
	if err != nil || m.Key != key {
		d.logger.Warn("disk tier: unreadable entry", zap.String("key", key), zap.Error(err))
		d.remove(key)
		return nil
	}
	body := make([]byte, m.BodyLen)
	if _, err := io.ReadFull(f, body); err != nil {
		d.remove(key)
		return nil
	}
	e := &entry{
		key: m.Key, primary: m.Primary, status: m.Status, header: m.Header, body: body,
		requestTime: m.RequestTime, responseTime: m.ResponseTime, initialAge: m.InitialAge,
		lifetime: m.Lifetime, cc: parseCacheControl(m.Header), varyNames: m.VaryNames,
		tags: m.Tags, reqHeader: m.ReqHeader,
	}
	if e.header == nil {
		e.header = http.Header{}
	}
	e.softPurged.Store(m.SoftPurged)
	return e
}

func (d *diskTier) has(key string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.index[key]
	return ok
}

func (d *diskTier) remove(key string) bool {
	d.mu.Lock()
	m, ok := d.index[key]
	if ok {
		delete(d.index, key)
		d.used -= m.fileSize
	}
	d.mu.Unlock()
	if ok {
		os.Remove(d.path(key))
	}
	return ok
}

func (d *diskTier) markSoftPurged(key string) {
	if e := d.load(key); e != nil {
		e.softPurged.Store(true)
		if err := d.store(e); err != nil {
			d.logger.Warn("disk tier: soft purge", zap.String("key", key), zap.Error(err))
		}
	}
}

func (d *diskTier) metas() []*diskMeta {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]*diskMeta, 0, len(d.index))
	for _, m := range d.index {
		out = append(out, m)
	}
	return out
}

func (d *diskTier) keysWithTags(tags []string) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var keys []string
	for k, m := range d.index {
		for _, t := range tags {
			if slices.Contains(m.Tags, t) {
				keys = append(keys, k)
				break
			}
		}
	}
	return keys
}

func (d *diskTier) usedBytes() int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.used
}
