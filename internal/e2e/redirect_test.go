package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/conductor-edge/conductor/internal/topology"
	"github.com/conductor-edge/conductor/shifting"
)

// redirectFixture is a manager, a back-end and two front-ends (eu and us,
// on one port of two addresses) serving the site "shop.example" from a
// bundle, and the origin's own Caddy, enrolled as an "origin" node, with
// conductor_redirect in front of its own answer.
type redirectFixture struct {
	tp     *topology.Topology
	origin string // the origin Caddy's address
	feIP   map[string]string
	port   int
}

const redirectSite = "shop.example"

var (
	redirectOnce sync.Once
	redirectFix  *redirectFixture
	redirectErr  error
)

func redirectSetup(t *testing.T) *redirectFixture {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: end-to-end")
	}
	redirectOnce.Do(func() { redirectFix, redirectErr = startRedirectFixture(t) })
	if redirectErr != nil {
		t.Fatal(redirectErr)
	}
	return redirectFix
}

// samePort finds a port free on both addresses.
func samePort(t *testing.T, a, b string) int {
	for range 50 {
		p := freePort(t, a)
		if ln, err := net.Listen("tcp", fmt.Sprintf("%s:%d", b, p)); err == nil {
			ln.Close()
			return p
		}
	}
	t.Fatalf("no port free on both %s and %s", a, b)
	return 0
}

func startRedirectFixture(t *testing.T) (*redirectFixture, error) {
	dir := filepath.Join(tmpDir, "redirect")
	port := samePort(t, "127.0.0.13", "127.0.0.14")
	f := &redirectFixture{port: port, feIP: map[string]string{"eu": "127.0.0.13", "us": "127.0.0.14"}}
	tp, err := topology.Start(context.Background(), topology.Options{
		Binary: binary, Dir: dir,
		OriginAddr:      fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1")),
		BackendTMP:      fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1")),
		Frontends:       []string{fmt.Sprintf("127.0.0.13:%d", port), fmt.Sprintf("127.0.0.14:%d", port)},
		FrontendRegions: []string{"eu", "us"},
		AdminBase:       freeAdminBase(t, 3),
		Manager:         fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1")),
		ManagerExtra:    "max_load 1000\n\t\tsettle 10m\n\t\tinterval 500ms",
		Progress:        func(f string, a ...any) { t.Logf(f, a...) },
	})
	if err != nil {
		return nil, err
	}
	f.tp = tp
	atExit = append(atExit, tp.Stop) // the fixture serves several tests
	data, digest, sig := siteBundle(t, tp.Opts.BundleKey, redirectSite, "1", "", map[string]string{"cart": "from the bundle"})
	if r, b := pushBundle(t, tp, data, digest, sig); r.StatusCode != 201 {
		return nil, fmt.Errorf("upload: %d %s", r.StatusCode, b)
	}
	waitUntil(t, 15*time.Second, "two front-ends reporting", func() bool {
		_, b := managerDo(t, tp, "GET", "/v1/state", nil)
		var st shifting.Snapshot
		json.Unmarshal(b, &st)
		return st.Nodes["fe1"] != nil && st.Nodes["fe2"] != nil
	})
	for _, n := range []string{"fe1", "fe2"} {
		if r, b := managerDo(t, tp, "POST", "/v1/sites/"+redirectSite+"/assign", []byte(`{"node": "`+n+`"}`)); r.StatusCode != 200 {
			return nil, fmt.Errorf("assign %s: %d %s", n, r.StatusCode, b)
		}
	}
	waitUntil(t, 15*time.Second, "both front-ends ready with the bundle", func() bool {
		_, b := managerDo(t, tp, "GET", "/v1/view?site="+redirectSite, nil)
		var v shifting.View
		json.Unmarshal(b, &v)
		ready := 0
		for _, e := range v.Sites[redirectSite] {
			if e.Ready && e.Healthy {
				ready++
			}
		}
		return ready == 2
	})

	// The origin's own Caddy.
	tok, err := tp.JoinToken("origin1", "origin")
	if err != nil {
		return nil, err
	}
	f.origin = fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1"))
	_, oport, _ := net.SplitHostPort(f.origin)
	cf := filepath.Join(dir, "origin.Caddyfile")
	os.WriteFile(cf, []byte(fmt.Sprintf(`{
	admin off
	persist_config off
	storage file_system %s
}
http://:%s {
	bind 127.0.0.1
	conductor_redirect {
		manager %s
		ca_file %s
		node origin1
		join_token %s
		identity_dir %s
		region 127.0.0.5/32 eu
		region 127.0.0.6/32 us
		port %d
		max_load 1000 # one machine: its load says nothing of any one front-end
	}
	respond "the origin itself" 200
}
`, filepath.Join(dir, "origin-storage"), oport, tp.ManagerURL(), tp.ManagerCA(), tok, filepath.Join(dir, "identity-origin1"), port)), 0o644)
	cmd := exec.Command(binary, "caddy", "run", "--config", cf, "--adapter", "caddyfile")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	logf, _ := os.Create(filepath.Join(dir, "origin-caddy.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	atExit = append(atExit, func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGINT); cmd.Wait(); logf.Close() })
	// Ready once it redirects (it has enrolled and has a view).
	waitUntil(t, 30*time.Second, "the origin to redirect", func() bool {
		req, _ := http.NewRequest(http.MethodGet, "http://"+f.origin+"/", nil)
		req.Host = redirectSite
		r, err := clientFrom("127.0.0.5").Do(req)
		if err != nil {
			return false
		}
		r.Body.Close()
		return r.StatusCode == http.StatusTemporaryRedirect
	})
	return f, nil
}

// clientFrom is a client whose connections come from src (a loopback
// address standing for a client in some region) and that does not follow
// redirects.
func clientFrom(src string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	return &http.Client{
		Transport:     &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       10 * time.Second,
	}
}

func (f *redirectFixture) get(t *testing.T, src, host, uri string, cookie *http.Cookie) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+f.origin+uri, nil)
	req.Host = host
	if cookie != nil {
		req.AddCookie(cookie)
	}
	resp, err := clientFrom(src).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// TestOriginRedirectToBestFrontend: a client that reaches the origin
// directly is sent (307: method and body kept) to the healthy front-end
// holding the site in its own region, with its path and query; and the
// front-end it is sent to serves the site.
func TestOriginRedirectToBestFrontend(t *testing.T) {
	f := redirectSetup(t)
	for src, region := range map[string]string{"127.0.0.5": "eu", "127.0.0.6": "us"} {
		resp, _ := f.get(t, src, redirectSite, "/product/7?color=blue", nil)
		want := fmt.Sprintf("http://%s:%d/product/7?color=blue", f.feIP[region], f.port)
		if resp.StatusCode != http.StatusTemporaryRedirect || resp.Header.Get("Location") != want {
			t.Fatalf("client in %s: %d → %q, want 307 → %q", region, resp.StatusCode, resp.Header.Get("Location"), want)
		}
	}
	// A POST keeps its method through a 307, and the front-end answers.
	req, _ := http.NewRequest(http.MethodPost, "http://"+f.origin+"/cart", strings.NewReader("id=2"))
	req.Host = redirectSite
	resp, err := clientFrom("127.0.0.5").Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTemporaryRedirect {
		t.Fatalf("POST: %d", resp.StatusCode)
	}
	fe, _ := http.NewRequest(http.MethodGet, resp.Header.Get("Location"), nil)
	fe.Host = redirectSite
	r2, err := http.DefaultClient.Do(fe)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r2.Body)
	r2.Body.Close()
	if string(b) != "from the bundle" {
		t.Fatalf("the front-end the client was sent to answered %d %q", r2.StatusCode, b)
	}
}

// TestOriginRedirectNoLoop: the redirect sets a cookie; a client that
// comes back with it within its minute (the front-end sent it back, say)
// is served by the origin, not redirected again.
func TestOriginRedirectNoLoop(t *testing.T) {
	f := redirectSetup(t)
	resp, _ := f.get(t, "127.0.0.5", redirectSite, "/", nil)
	var guard *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "conductor_redirected" {
			guard = c
		}
	}
	if resp.StatusCode != http.StatusTemporaryRedirect || guard == nil || guard.MaxAge <= 0 {
		t.Fatalf("first visit: %d, cookie %v", resp.StatusCode, guard)
	}
	resp, body := f.get(t, "127.0.0.5", redirectSite, "/", &http.Cookie{Name: guard.Name, Value: guard.Value})
	if resp.StatusCode != 200 || body != "the origin itself" {
		t.Fatalf("back within the minute: %d %q, want the origin's own answer", resp.StatusCode, body)
	}
}

// TestOriginRedirectServesWhenNoFrontend: a site no front-end holds, or a
// site whose front-ends are all down, is served by the origin itself.
func TestOriginRedirectServesWhenNoFrontend(t *testing.T) {
	f := redirectSetup(t)
	if resp, body := f.get(t, "127.0.0.5", "elsewhere.example", "/", nil); resp.StatusCode != 200 || body != "the origin itself" {
		t.Fatalf("a site without front-ends: %d %q", resp.StatusCode, body)
	}
	// Both front-ends stop: once the manager sees them silent (10 s), the
	// origin serves their site.
	for _, p := range []string{"frontend1", "frontend2"} {
		if err := f.tp.StopProc(p); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, 30*time.Second, "the origin to serve the site itself", func() bool {
		resp, body := f.get(t, "127.0.0.6", redirectSite, "/", nil)
		return resp.StatusCode == 200 && body == "the origin itself"
	})
}
