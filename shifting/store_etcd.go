package shifting

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// EtcdStore keeps the manager's state and bundles in etcd, so several
// managers share them; an EtcdElection makes one of them the leader.
// Bundles are stored in chunks under etcd's default request size limit.
type EtcdStore struct {
	Client *clientv3.Client
	Prefix string // e.g. "/conductor/"
	// Fence, if set, makes every write of the state conditional on this
	// manager still holding its leader key (the key's create revision is
	// unchanged, in the same etcd transaction). A leader that was deposed
	// while it paused (a GC, a partition) cannot overwrite the new
	// leader's state: its write fails with ErrNotLeader.
	Fence *EtcdElection
}

// ErrNotLeader is returned by a fenced write of a manager that no longer
// leads.
var ErrNotLeader = errors.New("shifting: not the leader any more: write refused")

const etcdChunk = 1 << 20

func (e EtcdStore) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 5*time.Second)
}

// Load reads the state.
func (e EtcdStore) Load() (*Snapshot, error) {
	ctx, cancel := e.ctx()
	defer cancel()
	resp, err := e.Client.Get(ctx, e.Prefix+"state")
	if err != nil {
		return nil, err
	}
	s := newSnapshot()
	if len(resp.Kvs) == 0 {
		return s, nil
	}
	if err := json.Unmarshal(resp.Kvs[0].Value, s); err != nil {
		return nil, err
	}
	return s, nil
}

// Save writes the state.
func (e EtcdStore) Save(s *Snapshot) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	ctx, cancel := e.ctx()
	defer cancel()
	put := clientv3.OpPut(e.Prefix+"state", string(b))
	if e.Fence == nil {
		_, err = e.Client.Do(ctx, put)
		return err
	}
	key, rev, ok := e.Fence.held()
	if !ok {
		return ErrNotLeader
	}
	resp, err := e.Client.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", rev)).Then(put).Commit()
	if err != nil {
		return err
	}
	if !resp.Succeeded {
		return ErrNotLeader
	}
	return nil
}

// PutBundle stores a bundle's bytes in chunks, then its chunk count.
func (e EtcdStore) PutBundle(digest string, data []byte) error {
	ctx, cancel := e.ctx()
	defer cancel()
	n := 0
	for off := 0; off < len(data) || n == 0; off += etcdChunk {
		end := min(off+etcdChunk, len(data))
		if _, err := e.Client.Put(ctx, fmt.Sprintf("%sbundles/%s/%06d", e.Prefix, digest, n), string(data[off:end])); err != nil {
			return err
		}
		n++
	}
	_, err := e.Client.Put(ctx, e.Prefix+"bundles/"+digest+"/n", fmt.Sprint(n))
	return err
}

// GetBundle reads a bundle back.
func (e EtcdStore) GetBundle(digest string) ([]byte, error) {
	ctx, cancel := e.ctx()
	defer cancel()
	resp, err := e.Client.Get(ctx, e.Prefix+"bundles/"+digest+"/0", clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
	if err != nil {
		return nil, err
	}
	var out []byte
	for _, kv := range resp.Kvs {
		out = append(out, kv.Value...)
	}
	if len(resp.Kvs) == 0 {
		return nil, fmt.Errorf("bundle %s not in etcd", digest)
	}
	return out, nil
}

// EtcdElection elects one leader among the managers sharing an etcd
// prefix (etcd's concurrency.Election over a lease of TTL seconds: a
// leader that dies loses its lease, and the next candidate wins).
type EtcdElection struct {
	Client *clientv3.Client
	Prefix string
	ID     string // this manager's name, e.g. its address
	TTL    int    // seconds; default 3

	leader atomic.Bool
	elect  atomic.Pointer[concurrency.Election]
	sess   atomic.Pointer[concurrency.Session]
}

// held returns the leader key this manager won and its create revision,
// the fence of its writes.
func (e *EtcdElection) held() (string, int64, bool) {
	el := e.elect.Load()
	if el == nil || !e.leader.Load() {
		return "", 0, false
	}
	return el.Key(), el.Rev(), true
}

// Campaign blocks until this manager leads (or ctx ends). It returns a
// channel closed when leadership is lost.
func (e *EtcdElection) Campaign(ctx context.Context) (<-chan struct{}, error) {
	ttl := e.TTL
	if ttl == 0 {
		ttl = 3
	}
	sess, err := concurrency.NewSession(e.Client, concurrency.WithTTL(ttl), concurrency.WithContext(ctx))
	if err != nil {
		return nil, err
	}
	el := concurrency.NewElection(sess, e.Prefix+"leader")
	if err := el.Campaign(ctx, e.ID); err != nil {
		sess.Close()
		return nil, err
	}
	e.elect.Store(el)
	e.sess.Store(sess)
	e.leader.Store(true)
	lost := make(chan struct{})
	go func() {
		select {
		case <-sess.Done():
		case <-ctx.Done():
			rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			el.Resign(rctx)
			cancel()
			sess.Close()
		}
		e.leader.Store(false)
		close(lost)
	}()
	return lost, nil
}

// Leader reports whether this manager leads now.
func (e *EtcdElection) Leader() bool { return e.leader.Load() }

// LeaderID names the current leader, for followers to point at.
func (e *EtcdElection) LeaderID(ctx context.Context) string {
	resp, err := e.Client.Get(ctx, e.Prefix+"leader", clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend), clientv3.WithLimit(1))
	if err != nil || len(resp.Kvs) == 0 {
		return ""
	}
	return string(resp.Kvs[0].Value)
}
