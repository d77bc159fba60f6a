package shifting

import (
	"encoding/json"
	"os"
	"path/filepath"
	"time"
)

// NodeReport is what a node tells the manager every few seconds.
type NodeReport struct {
	ID     string `json:"id"`
	Role   string `json:"role"` // frontend or backend
	Region string `json:"region"`
	// Addr is where clients reach the node (an IP for DNS answers).
	Addr string `json:"addr"`
	// Probe is the node's HTTP address (host:port).
	Probe string `json:"probe,omitempty"`
	// Peer is where the node serves bundles to its peers (host:port,
	// HTTPS with mutual TLS).
	Peer string `json:"peer,omitempty"`
	// Upstream is where front-ends reach a back-end (host:port of its TMP
	// listener): what they dial when the manager assigns it to a site.
	Upstream string `json:"upstream,omitempty"`
	// Load is the node's CPU load (load average ÷ cores).
	Load     float64 `json:"load"`
	MemBytes uint64  `json:"mem_bytes"`
	RPS      float64 `json:"rps"`
	// SiteRPS is requests/s per site (Host) this node served.
	SiteRPS map[string]float64 `json:"site_rps,omitempty"`
	// ClientLatencyMS is the median time to first byte to its clients.
	ClientLatencyMS float64 `json:"client_latency_ms"`
	// Links is the TMP link quality to each back-end.
	Links map[string]LinkQuality `json:"links,omitempty"`
	// Bundles is the inventory: site → installed bundle digest.
	Bundles map[string]string `json:"bundles,omitempty"`
	// Failed is the last bundle install that failed, if any.
	Failed string `json:"failed,omitempty"`
	// Rooms and Gates are a front-end's fleet-wide admission limits (by
	// room name, and by load_gate origin name) and its demand on them.
	Rooms map[string]RoomReport `json:"rooms,omitempty"`
	Gates map[string]GateReport `json:"gates,omitempty"`
}

// LinkQuality is one TMP link as the node sees it.
type LinkQuality struct {
	RTTMS float64 `json:"rtt_ms"`
	Loss  float64 `json:"loss"`
}

// Node is the manager's record of a node.
type Node struct {
	Report   NodeReport `json:"report"`
	LastSeen time.Time  `json:"last_seen"`
}

// Healthy: reported within the last 10 s.
func (n *Node) Healthy(now time.Time) bool { return now.Sub(n.LastSeen) < 10*time.Second }

// BundleInfo describes a stored bundle.
type BundleInfo struct {
	Digest    string    `json:"digest"`
	Site      string    `json:"site"`
	Version   string    `json:"version"`
	Size      int       `json:"size"`
	Signature []byte    `json:"signature,omitempty"`
	Stored    time.Time `json:"stored"`
}

// Assignment is a front-end serving a site.
type Assignment struct {
	Node   string    `json:"node"`
	Since  time.Time `json:"since"`
	Pinned bool      `json:"pinned"` // placed by the operator: placement never releases it
	Reason string    `json:"reason"`
}

// Site is the manager's record of a site.
type Site struct {
	Name     string                 `json:"name"`
	Bundle   string                 `json:"bundle"` // current digest
	Assigned map[string]*Assignment `json:"assigned"`
	// Backends are the back-ends that carry the site's requests to its
	// origin (seed: the back-end manager "manipulates the number of …
	// back-ends assigned to each web site"); front-ends follow them
	// through the `dynamic conductor` upstreams.
	Backends map[string]*Assignment `json:"backends,omitempty"`
	// Demand is the EWMA of requests/s per region; Trend its last change.
	Demand map[string]float64 `json:"demand"`
	Trend  float64            `json:"trend"`
	// LowSince is when demand last fell below the release level (zero: it is not below).
	LowSince   time.Time `json:"low_since"`
	LastChange time.Time `json:"last_change"`
}

// Decision is one placement change, with its reason.
type Decision struct {
	Time   time.Time `json:"time"`
	Site   string    `json:"site"`
	Node   string    `json:"node"`
	Action string    `json:"action"` // assign, release, update
	Reason string    `json:"reason"`
	By     string    `json:"by"` // placement, operator
}

// Snapshot is the manager's whole state, as kept by a Store.
type Snapshot struct {
	Version   uint64                 `json:"version"`
	Nodes     map[string]*Node       `json:"nodes"`
	Sites     map[string]*Site       `json:"sites"`
	Bundles   map[string]*BundleInfo `json:"bundles"`
	Decisions []Decision             `json:"decisions"`
	// JoinTokens are the outstanding join tokens, by ID.
	JoinTokens map[string]*JoinToken `json:"join_tokens,omitempty"`
	// Revoked: certificates a node got before this time are refused.
	Revoked map[string]time.Time `json:"revoked,omitempty"`
}

func newSnapshot() *Snapshot {
	return &Snapshot{Nodes: map[string]*Node{}, Sites: map[string]*Site{}, Bundles: map[string]*BundleInfo{}}
}

// Store keeps the manager's state and bundle bytes. FileStore is the
// default (memory, snapshotted to a file); an etcd store lets several
// managers share state with one leader.
type Store interface {
	Load() (*Snapshot, error)
	Save(*Snapshot) error
	PutBundle(digest string, data []byte) error
	GetBundle(digest string) ([]byte, error)
}

// FileStore snapshots the state to dir/state.json and keeps bundles as
// files, written to a temporary name and renamed.
type FileStore struct{ Dir string }

func (f FileStore) Load() (*Snapshot, error) {
	b, err := os.ReadFile(filepath.Join(f.Dir, "state.json"))
	if os.IsNotExist(err) {
		return newSnapshot(), nil
	}
	if err != nil {
		return nil, err
	}
	s := newSnapshot()
	if err := json.Unmarshal(b, s); err != nil {
		return nil, err
	}
	return s, nil
}

func (f FileStore) Save(s *Snapshot) error {
	b, err := json.MarshalIndent(s, "", " ")
	if err != nil {
		return err
	}
	return writeAtomic(filepath.Join(f.Dir, "state.json"), b)
}

func (f FileStore) PutBundle(digest string, data []byte) error {
	return writeAtomic(filepath.Join(f.Dir, "bundles", fileName(digest)), data)
}

func (f FileStore) GetBundle(digest string) ([]byte, error) {
	return os.ReadFile(filepath.Join(f.Dir, "bundles", fileName(digest)))
}

func fileName(digest string) string {
	out := []byte(digest)
	for i, c := range out {
		if c == ':' || c == '/' {
			out[i] = '-'
		}
	}
	return string(out)
}

func writeAtomic(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), path)
}
