package caddymodule

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/conductor-edge/conductor/internal/inproc"
)

// Tests of the front-end's admission and substitution handlers, each in a
// real Caddy (in this process) in front of a real Go origin.

type testOrigin struct {
	*httptest.Server
	hits atomic.Int64
}

func newTestOrigin(t *testing.T, h http.HandlerFunc) *testOrigin {
	o := &testOrigin{}
	o.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.hits.Add(1)
		h(w, r)
	}))
	t.Cleanup(o.Close)
	return o
}

func (o *testOrigin) hostport() string { return strings.TrimPrefix(o.URL, "http://") }

// site runs `body` as the only site of a Caddy and returns its base URL
// and admin address.
func site(t *testing.T, globals, body string) (base, admin string) {
	t.Helper()
	port, adminPort := inproc.Port(t), inproc.Port(t)
	inproc.Load(t, fmt.Sprintf("{\n\tadmin 127.0.0.1:%d\n\tauto_https off\n\tpersist_config off\n%s\n}\nhttp://127.0.0.1:%d {\n%s\n}\n",
		adminPort, globals, port, body))
	return fmt.Sprintf("http://127.0.0.1:%d", port), fmt.Sprintf("http://127.0.0.1:%d", adminPort)
}

func fetch(t *testing.T, c *http.Client, method, url string, hdr ...string) (*http.Response, string) {
	t.Helper()
	if c == nil {
		c = &http.Client{Timeout: 10 * time.Second}
	}
	req, _ := http.NewRequest(method, url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestFallbackReplacesTheOriginsNotFound(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "404.html"), []byte("<h1>Not here, but look at our sale</h1>"), 0o644)
	o := newTestOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Origin-Secret", "leak")
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, "nginx-style ugly 404")
	})
	base, _ := site(t, "", fmt.Sprintf("\tfallback {\n\t\tnot_found %s\n\t}\n\treverse_proxy %s", dir, o.hostport()))
	r, b := fetch(t, nil, "GET", base+"/missing")
	if r.StatusCode != 404 || b != "<h1>Not here, but look at our sale</h1>" || r.Header.Get("X-Origin-Secret") != "" {
		t.Fatalf("custom 404: %d %q %v", r.StatusCode, b, r.Header)
	}
	base, _ = site(t, "", fmt.Sprintf("\tfallback {\n\t\tnot_found %s 200\n\t}\n\treverse_proxy %s", filepath.Join(dir, "404.html"), o.hostport()))
	if r, _ := fetch(t, nil, "GET", base+"/missing"); r.StatusCode != 200 {
		t.Fatalf("status set to 200: got %d", r.StatusCode)
	}
}

func TestFallbackServesStaleThenApologizes(t *testing.T) {
	var failing atomic.Bool
	o := newTestOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprint(w, "stack trace the visitor must not see")
			return
		}
		w.Header().Set("Cache-Control", "max-age=1")
		fmt.Fprint(w, "the real page")
	})
	base, _ := site(t, "", fmt.Sprintf("\tfallback {\n\t\tsite_name \"Demo Shop\"\n\t}\n\tedge_cache {\n\t\tstale_on_error 1h\n\t}\n\treverse_proxy %s", o.hostport()))
	fetch(t, nil, "GET", base+"/page")
	time.Sleep(1100 * time.Millisecond)
	failing.Store(true)
	r, b := fetch(t, nil, "GET", base+"/page")
	if r.StatusCode != 200 || b != "the real page" {
		t.Fatalf("origin 500 with a stale copy: %d %q", r.StatusCode, b)
	}
	r, b = fetch(t, nil, "GET", base+"/never-cached")
	if r.StatusCode != 503 || r.Header.Get("Conductor-Substitute") != "apology" || r.Header.Get("Retry-After") == "" ||
		strings.Contains(b, "stack trace") || !strings.Contains(b, "Demo Shop") {
		t.Fatalf("origin 500, nothing stored: %d %v %.200s", r.StatusCode, r.Header, b)
	}
	o.Close() // unreachable
	if r, _ := fetch(t, nil, "GET", base+"/also-never"); r.StatusCode != 503 || r.Header.Get("Conductor-Substitute") != "apology" {
		t.Fatalf("origin unreachable: %d %v", r.StatusCode, r.Header)
	}
}

func TestFallbackAnswersASlowOriginAtOnceAndTheRetryFindsThePage(t *testing.T) {
	release := make(chan struct{})
	o := newTestOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-release
		}
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "slow page, finally")
	})
	base, _ := site(t, "", fmt.Sprintf("\tfallback {\n\t\tslow 200ms\n\t}\n\tedge_cache\n\treverse_proxy %s", o.hostport()))
	if _, b := fetch(t, nil, "GET", base+"/fast"); b != "slow page, finally" {
		t.Fatalf("fast page: %q", b)
	}
	// The origin holds /slow: the visitor gets the substitute while it
	// still holds it.
	r, b := fetch(t, nil, "GET", base+"/slow")
	if r.StatusCode != 503 || r.Header.Get("Conductor-Substitute") != "slow" || !strings.Contains(b, "Almost there") {
		t.Fatalf("slow origin: %d %v", r.StatusCode, r.Header)
	}
	close(release)
	// The origin's answer was still fetched and stored: the browser's
	// retry finds it, without a second origin request.
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, b = fetch(t, nil, "GET", base+"/slow", "Cache-Control", "only-if-cached")
		if r.StatusCode == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the slow answer never reached the cache: %d", r.StatusCode)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if b != "slow page, finally" || o.hits.Load() != 2 {
		t.Fatalf("retry: %q, origin hits %d (want 2: /fast and one /slow)", b, o.hits.Load())
	}
}

func TestLoadIndexWaitPageSparesUrgentRequests(t *testing.T) {
	o := newTestOrigin(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "content") })
	// One Caddy plays both roles: the back-end site publishes the index in
	// front of the origin; the front-end site learns it and acts on it.
	bePort := inproc.Port(t)
	port, adminPort := inproc.Port(t), inproc.Port(t)
	inproc.Load(t, fmt.Sprintf(`{
	admin 127.0.0.1:%[1]d
	auto_https off
	persist_config off
}
http://127.0.0.1:%[2]d {
	priority {
		0 cookie cart
		# This test's one client sends many urgent requests; the owner's
		# budget allows them (TestPriorityBypassBudget tests the limit).
		bypass_budget 1000 burst 1000
	}
	load_gate gate-test {
		poll http://127.0.0.1:%[2]d/.well-known/conductor-load 200ms
		retry 3s
		site_name "Demo Shop"
	}
	reverse_proxy 127.0.0.1:%[3]d
}
http://127.0.0.1:%[3]d {
	load_index {
		capacity 1000
	}
	reverse_proxy %[4]s
}
`, adminPort, port, bePort, o.hostport()))
	base, admin := fmt.Sprintf("http://127.0.0.1:%d", port), fmt.Sprintf("http://127.0.0.1:%d", adminPort)
	if r, b := fetch(t, nil, "GET", base+"/"); r.StatusCode != 200 || b != "content" || r.Header.Get("Conductor-Load-Index") != "" {
		t.Fatalf("unloaded: %d %q; the index must not reach the visitor (%v)", r.StatusCode, b, r.Header)
	}
	// The origin's operator says it is overloaded.
	resp, err := http.Post(admin+"/load_index", "application/json", strings.NewReader(`{"index": 2.5, "ttl": "1m"}`))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("admin: %v %v", err, resp)
	}
	resp.Body.Close()
	waits := 0
	deadline := time.Now().Add(10 * time.Second)
	for waits < 10 {
		r, b := fetch(t, nil, "GET", base+"/browse")
		if r.StatusCode == 503 {
			if r.Header.Get("Conductor-Substitute") != "wait" || r.Header.Get("Retry-After") != "3" || !strings.Contains(b, "250%") {
				t.Fatalf("wait page: %v %.300s", r.Header, b)
			}
			waits++
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d wait pages with the index at 2.5", waits)
		}
		// Priority 0 always goes through.
		if r, b := fetch(t, nil, "GET", base+"/checkout", "Cookie", "cart=3"); r.StatusCode != 200 || b != "content" {
			t.Fatalf("priority 0 while overloaded: %d %q", r.StatusCode, b)
		}
	}
	// Bad admin input is refused.
	for _, body := range []string{`{"index": -1}`, `{"index": "high"}`, `{"index": 1, "ttl": "soon"}`} {
		resp, err := http.Post(admin+"/load_index", "application/json", strings.NewReader(body))
		if err != nil || resp.StatusCode != 400 {
			t.Errorf("%s: %v %v", body, err, resp.StatusCode)
		}
		resp.Body.Close()
	}
	// Once the index falls, low priorities come back (the poll notices).
	resp, _ = http.Post(admin+"/load_index", "application/json", strings.NewReader(`{"index": 0}`))
	resp.Body.Close()
	deadline = time.Now().Add(15 * time.Second)
	for {
		if r, _ := fetch(t, nil, "GET", base+"/browse"); r.StatusCode == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("low priority never came back after the index fell")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

type roomAnswer struct {
	status  int
	room    string // Conductor-Waiting-Room
	body    string
	cookies []*http.Cookie
}

func TestWaitingRoomIsFIFOAndRefusesForgedAndReplayedCookies(t *testing.T) {
	o := newTestOrigin(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "in the shop") })
	// Rooms outlive config reloads, so each run takes a room of its own.
	room := fmt.Sprintf("room%d", time.Now().UnixNano())
	base, _ := site(t, "\tservers {\n\t\ttrusted_proxies static 127.0.0.1/32\n\t}", fmt.Sprintf(`	priority {
		0 cookie cart
	}
	waiting_room %s {
		total_active_users 2
		new_users_per_minute 6000
		session_duration 4s
		refresh 1s
		secret "a test secret of enough length"
	}
	reverse_proxy %s`, room, o.hostport()))
	visitor := func() *http.Client {
		jar, _ := cookiejar.New(nil)
		return &http.Client{Jar: jar, Timeout: 10 * time.Second}
	}
	get := func(c *http.Client, hdr ...string) roomAnswer {
		t.Helper()
		r, b := fetch(t, c, "GET", base+"/shop", hdr...)
		return roomAnswer{r.StatusCode, r.Header.Get("Conductor-Waiting-Room"), b, r.Cookies()}
	}
	a, b := visitor(), visitor()
	if ra := get(a); ra.body != "in the shop" || !strings.HasPrefix(ra.room, "admitted") {
		t.Fatalf("first visitor: %+v", ra)
	}
	get(b)
	queued := []*http.Client{visitor(), visitor(), visitor()}
	for i, c := range queued {
		ra := get(c)
		if !strings.Contains(ra.room, fmt.Sprintf("queued; position=%d", i+1)) || !strings.Contains(ra.body, "You are in line") {
			t.Fatalf("visitor %d in a full room: %+v", i+3, ra)
		}
	}
	// JSON for scripts.
	r, body := fetch(t, queued[0], "GET", base+"/shop", "Accept", "application/json")
	var js struct {
		Position int  `json:"position"`
		Known    bool `json:"waitTimeKnown"`
		Refresh  int  `json:"refreshIntervalSeconds"`
	}
	if err := json.Unmarshal([]byte(body), &js); err != nil || js.Position != 1 || js.Refresh != 1 || r.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("JSON: %q %v", body, err)
	}
	// Priority 0 skips the line.
	if ra := get(visitor(), "Cookie", "cart=1"); ra.body != "in the shop" {
		t.Fatalf("priority 0 in a full room: %+v", ra)
	}

	// A forged cookie: a new visitor at the back of the line.
	u, _ := http.NewRequest("GET", base, nil)
	cookieName := "__conductor_wr_" + room
	var qc *http.Cookie
	for _, c := range queued[1].Jar.Cookies(u.URL) {
		if c.Name == cookieName {
			qc = c
		}
	}
	forged := []byte(qc.Value)
	forged[10] ^= 2
	if ra := get(visitor(), "Cookie", cookieName+"="+string(forged)); !strings.Contains(ra.room, "position=4") {
		t.Fatalf("forged cookie kept its place: %+v", ra)
	}
	// A replayed cookie: queued[1] checks in (its nonce changes); a copy of
	// its old cookie is refused and sent to the back.
	get(queued[1])
	if ra := get(visitor(), "Cookie", cookieName+"="+qc.Value); !strings.Contains(ra.room, "position=5") {
		t.Fatalf("replayed cookie kept its place: %+v", ra)
	}
	// An active session's cookie from another address is refused. (The
	// session lasts 4 s, which all of the above takes well within, even
	// on a loaded machine; with 1 s, it once did not.)
	var ac *http.Cookie
	for _, c := range a.Jar.Cookies(u.URL) {
		if c.Name == cookieName {
			ac = c
		}
	}
	if ac == nil {
		t.Fatal("the first visitor's session cookie is gone: its session ended before the test got here")
	}
	if ra := get(visitor(), "Cookie", cookieName+"="+ac.Value, "X-Forwarded-For", "203.0.113.9"); !strings.HasPrefix(ra.room, "queued") {
		t.Fatalf("active cookie from another address got in: %+v", ra)
	}

	// FIFO: the first two stop browsing; their sessions end and the line
	// moves in ticket order as visitors check in.
	time.Sleep(4200 * time.Millisecond)
	type admission struct{ seq, ticket int }
	var order []admission
	deadline := time.Now().Add(10 * time.Second)
	for len(order) < 3 && time.Now().Before(deadline) {
		for i := len(queued) - 1; i >= 0; i-- { // the latest checks in first
			ra := get(queued[i])
			var a admission
			if n, _ := fmt.Sscanf(ra.room, "admitted; seq=%d; ticket=%d", &a.seq, &a.ticket); n == 2 {
				order = append(order, a)
				queued = append(queued[:i], queued[i+1:]...)
			}
		}
		time.Sleep(300 * time.Millisecond)
	}
	if len(order) != 3 {
		t.Fatalf("admitted %d of 3 from the line: %+v", len(order), order)
	}
	for i := 1; i < len(order); i++ {
		for j := 0; j < i; j++ {
			if (order[i].seq < order[j].seq) != (order[i].ticket < order[j].ticket) {
				t.Fatalf("not FIFO: admissions %+v", order)
			}
		}
	}
}

// The line has a cap (max_waiting; by default the visitors admitted in one
// session duration). A visitor past it gets no ticket: a clear 503 with
// Retry-After, as a page or as JSON. Before, the line grew without bound,
// one ticket and one map entry per request without a cookie.
func TestWaitingLineCap(t *testing.T) {
	o := newTestOrigin(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "in the shop") })
	room := fmt.Sprintf("room%d", time.Now().UnixNano())
	base, _ := site(t, "", fmt.Sprintf(`	waiting_room %s {
		total_active_users 1
		new_users_per_minute 1
		max_waiting 3
		refresh 7s
		secret "a test secret of enough length"
	}
	reverse_proxy %s`, room, o.hostport()))
	if resp, body := fetch(t, nil, "GET", base+"/shop"); body != "in the shop" {
		t.Fatalf("first visitor: %d %q", resp.StatusCode, body)
	}
	for i := 1; i <= 3; i++ {
		resp, _ := fetch(t, nil, "GET", base+"/shop")
		if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Conductor-Waiting-Room"), fmt.Sprintf("position=%d", i)) {
			t.Fatalf("visitor %d: %d %q", i+1, resp.StatusCode, resp.Header.Get("Conductor-Waiting-Room"))
		}
	}
	resp, body := fetch(t, nil, "GET", base+"/shop")
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "7" || !strings.Contains(body, "The line is full") {
		t.Fatalf("past the cap: %d, Retry-After %q, %q", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if len(resp.Cookies()) != 0 {
		t.Fatal("a visitor past the cap got a ticket")
	}
	resp, body = fetch(t, nil, "GET", base+"/shop", "Accept", "application/json")
	var js struct {
		Full    bool `json:"queueIsFull"`
		Refresh int  `json:"refreshIntervalSeconds"`
	}
	if err := json.Unmarshal([]byte(body), &js); err != nil || resp.StatusCode != http.StatusServiceUnavailable || !js.Full || js.Refresh != 7 || resp.Header.Get("Retry-After") != "7" {
		t.Fatalf("JSON past the cap: %d %q %v", resp.StatusCode, body, err)
	}
}

// While the origin is still working on a URL for a client that got the
// slow page, the page's retries (every 2 s, from every such client) get the
// slow page at once instead of each sending the origin one more request.
// Before, a slow origin saw a new request per retry per client: its load
// grew with its slowness.
func TestSlowPageRetriesAreCoalesced(t *testing.T) {
	release := make(chan struct{})
	o := newTestOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		<-release
		fmt.Fprint(w, "slow page, finally")
	})
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	base, _ := site(t, "", fmt.Sprintf("\tfallback {\n\t\tslow 100ms\n\t}\n\treverse_proxy %s", o.hostport()))
	if r, _ := fetch(t, nil, "GET", base+"/report"); r.Header.Get("Conductor-Substitute") != "slow" {
		t.Fatalf("first request: %d %v", r.StatusCode, r.Header)
	}
	for i := range 10 {
		r, _ := fetch(t, nil, "GET", base+"/report")
		if r.Header.Get("Conductor-Substitute") != "slow" {
			t.Fatalf("retry %d: %d %v", i, r.StatusCode, r.Header)
		}
	}
	if n := o.hits.Load(); n != 1 {
		t.Fatalf("the origin got %d requests for one URL while it was still answering the first", n)
	}
	close(release)
	// Once the fetch is over, a new request goes to the origin again.
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, b := fetch(t, nil, "GET", base+"/report"); b == "slow page, finally" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("requests after the slow fetch ended never reached the origin")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
