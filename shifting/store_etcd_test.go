package shifting

import (
	"context"
	"errors"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/conductor-edge/conductor/internal/etcdtest"
)

// A deposed leader's write is refused. Manager A wins the election, then
// loses its lease while it still believes it leads (a long GC pause, a
// partition); B wins. A's next save, fenced on its leader key, fails with
// ErrNotLeader and leaves B's state alone; B's save goes through. Before,
// every save was a plain put: the last writer won, deposed or not.
func TestEtcdSaveFenced(t *testing.T) {
	endpoint := etcdtest.Start(t)
	client := func() *clientv3.Client {
		c, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ca, cb := client(), client()
	elA := &EtcdElection{Client: ca, Prefix: "/t/", ID: "a", TTL: 5}
	elB := &EtcdElection{Client: cb, Prefix: "/t/", ID: "b", TTL: 5}
	storeA := EtcdStore{Client: ca, Prefix: "/t/", Fence: elA}
	storeB := EtcdStore{Client: cb, Prefix: "/t/", Fence: elB}

	actx, acancel := context.WithCancel(ctx)
	defer acancel()
	if _, err := elA.Campaign(actx); err != nil {
		t.Fatal(err)
	}
	sa := newSnapshot()
	sa.Version = 1
	if err := storeA.Save(sa); err != nil {
		t.Fatalf("the leader's save: %v", err)
	}
	if err := storeB.Save(sa); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("a follower's save: %v, want ErrNotLeader", err)
	}

	// A's lease is revoked behind its back: its key goes, and B wins.
	if _, err := cb.Revoke(ctx, elA.sess.Load().Lease()); err != nil {
		t.Fatal(err)
	}
	bctx, bcancel := context.WithCancel(ctx)
	defer bcancel()
	if _, err := elB.Campaign(bctx); err != nil {
		t.Fatal(err)
	}
	sb := newSnapshot()
	sb.Version = 2
	if err := storeB.Save(sb); err != nil {
		t.Fatalf("the new leader's save: %v", err)
	}
	// A still thinks it leads, for a moment: its write must not land.
	elA.leader.Store(true)
	sa.Version = 3
	if err := storeA.Save(sa); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("the deposed leader's save: %v, want ErrNotLeader", err)
	}
	got, err := storeB.Load()
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != 2 {
		t.Fatalf("state version %d after the deposed leader's write, want the new leader's 2", got.Version)
	}
}
