package shifting

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestManagerAPI(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	f := newTestFleet(t, Config{SigningKey: pub})
	m, c, fe1 := f.m, f.admin, f.enrolNode("fe1", "frontend", "127.0.0.2")

	if r, _ := (client{t, f.srv.URL, "wrong", f.srv.Client()}).do("GET", "/v1/state", nil); r.StatusCode != 401 {
		t.Fatalf("wrong key: %d", r.StatusCode)
	}
	if r, b := postReport(t, fe1, "/v1/nodes/fe1/report", NodeReport{ID: "fe1", Role: "frontend", Region: "eu", Addr: "127.0.0.2"}); r.StatusCode != 204 {
		t.Fatalf("report: %d %s", r.StatusCode, b)
	}
	data, digest, sig, err := Build(siteDir(t, "shop.example", "1", "", map[string]string{"index.html": "v1"}), priv, "")
	if err != nil {
		t.Fatal(err)
	}
	if r, b := c.do("POST", "/v1/bundles", data, "X-Bundle-Digest", "sha256:0000", "X-Bundle-Signature", hex.EncodeToString(sig)); r.StatusCode != 422 || !strings.Contains(string(b), "does not match") {
		t.Fatalf("wrong hash: %d %s", r.StatusCode, b)
	}
	if r, b := c.do("POST", "/v1/bundles", data, "X-Bundle-Digest", digest, "X-Bundle-Signature", hex.EncodeToString(sig)); r.StatusCode != 201 {
		t.Fatalf("upload: %d %s", r.StatusCode, b)
	}
	// Placement gives the site its first front-end; the node's long-poll
	// for assignments returns it.
	var as Assignments
	deadline := time.Now().Add(5 * time.Second)
	for len(as.Sites) == 0 && time.Now().Before(deadline) {
		_, b := fe1.do("GET", "/v1/nodes/fe1/assignments?wait="+itoa(as.Version), nil)
		json.Unmarshal(b, &as)
	}
	if as.Sites["shop.example"] != digest {
		t.Fatalf("assignments %+v", as)
	}
	if r, b := fe1.do("GET", "/v1/bundles/"+digest, nil); r.StatusCode != 200 || !bytes.Equal(b, data) || r.Header.Get("X-Bundle-Signature") != hex.EncodeToString(sig) {
		t.Fatalf("download: %d", r.StatusCode)
	}
	_, b := c.do("GET", "/v1/view?site=shop.example", nil)
	var v View
	json.Unmarshal(b, &v)
	if len(v.Sites["shop.example"]) != 1 || v.Sites["shop.example"][0].Addr != "127.0.0.2" || v.Sites["shop.example"][0].Ready {
		t.Fatalf("view %s (not ready: fe1 has not reported the bundle installed)", b)
	}
	if r, _ := c.do("POST", "/v1/sites/shop.example/assign", []byte(`{"node": "nope"}`)); r.StatusCode != 404 {
		t.Fatalf("assign to an unknown node: %d", r.StatusCode)
	}
	// The state survives a restart of the manager.
	m2, err := New(Config{Store: m.cfg.Store})
	if err != nil || m2.state.Sites["shop.example"].Bundle != digest || len(m2.state.Sites["shop.example"].Assigned) != 1 {
		t.Fatalf("reloaded state: %v", err)
	}
}

func itoa(v uint64) string { b, _ := json.Marshal(v); return string(b) }

// A front-end that stops reporting leaves the DNS view without anything
// else changing: the view's long-poll must still wake.
func TestViewLongPollWakesWhenANodeGoesSilent(t *testing.T) {
	f := newTestFleet(t, Config{Policy: Policy{Interval: 50 * time.Millisecond, Settle: time.Hour}})
	m := f.m
	m.mu.Lock()
	m.state.Nodes["fe1"] = &Node{LastSeen: time.Now().Add(-9900 * time.Millisecond), Report: NodeReport{ID: "fe1", Role: "frontend", Addr: "127.0.0.2"}}
	m.state.Sites["s"] = &Site{Name: "s", Bundle: "sha256:x", Demand: map[string]float64{}, Assigned: map[string]*Assignment{"fe1": {Node: "fe1", Pinned: true}}}
	m.mu.Unlock()
	c := f.reader
	_, b := c.do("GET", "/v1/view?site=s", nil)
	var v View
	json.Unmarshal(b, &v)
	start := time.Now()
	for len(v.Sites["s"]) == 0 || v.Sites["s"][0].Healthy {
		_, b = c.do("GET", "/v1/view?site=s&wait="+itoa(v.Version), nil)
		v = View{}
		json.Unmarshal(b, &v)
		// Without a wake-up the long-poll would return at its 25 s timeout.
		if time.Since(start) > 15*time.Second {
			t.Fatal("the view's long-poll did not wake when fe1 went silent")
		}
	}
	if len(v.Sites["s"]) != 1 || v.Sites["s"][0].Healthy {
		t.Fatalf("view after fe1 went silent: %s", b)
	}
}
