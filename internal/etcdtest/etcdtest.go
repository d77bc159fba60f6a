// Package etcdtest runs a real etcd (its embedded server) on loopback for
// a test.
package etcdtest

import (
	"fmt"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"go.etcd.io/etcd/server/v3/embed"

	"github.com/conductor-edge/conductor/internal/topology"
)

// Start runs etcd until the test ends and returns its client address
// (host:port).
func Start(t testing.TB) string {
	t.Helper()
	port := func() int {
		p, err := topology.FreePort("127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	cfg := embed.NewConfig()
	cfg.Dir = filepath.Join(t.TempDir(), "etcd")
	client := fmt.Sprintf("http://127.0.0.1:%d", port())
	peer := fmt.Sprintf("http://127.0.0.1:%d", port())
	cu, _ := url.Parse(client)
	pu, _ := url.Parse(peer)
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
	cfg.InitialCluster = cfg.Name + "=" + peer
	cfg.LogLevel = "error"
	cfg.LogOutputs = []string{filepath.Join(t.TempDir(), "etcd.log")} // its shutdown complains on stderr otherwise
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(30 * time.Second):
		t.Fatal("etcd did not start")
	}
	return cu.Host
}
