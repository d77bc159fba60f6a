// Package topology starts a whole Conductor topology on loopback as real
// processes of the conductor binary: an origin shop, a back-end Caddy beside
// it, and front-end Caddys on their own loopback addresses (127.0.0.2,
// 127.0.0.3, …). `conductor demo` and the end-to-end tests both use it.
package topology

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/miekg/dns"
)

// Options describes the topology. Zero fields get the demo's defaults.
type Options struct {
	Binary     string // the conductor binary
	Dir        string // configs, Caddy storage and logs go here
	OriginAddr string // default 127.0.0.1:9080
	// OriginCommand, if set, starts the origin instead of the demo shop
	// (for example nginx, in the edge cache's end-to-end test). It must
	// serve OriginAddr and answer 200 on "/".
	OriginCommand []string
	// OriginRunning says the origin already serves OriginAddr (a test's
	// own server): no origin process is started.
	OriginRunning bool
	// DynamicUpstreams: the front-ends proxy to the back-ends the manager
	// assigns each site (`dynamic conductor`), the static list being the
	// fallback until it has.
	DynamicUpstreams bool
	// NoOrigin: there is no origin at all (a site served by its bundle
	// alone); OriginAddr is still where the back-end would proxy, and
	// nothing listens there. The front-ends are ready once they answer.
	NoOrigin   bool
	BackendTMP string // back-end TMP address, default 127.0.0.1:4433
	// MoreBackends are the TMP addresses of further back-ends (process
	// names backend2, backend3, …) beside the same origin; front-ends
	// balance across all of them.
	MoreBackends []string
	// DNSAddr, if set, is where a CoreDNS with the conductor plugin answers
	// for Site (process name "dns"), steering to the front-ends by their
	// health (their metrics endpoints).
	DNSAddr string
	// Site is the name the DNS answers for. Default shop.example.
	Site string
	// ProxyExtra is inserted in every front-end's reverse_proxy block (load
	// balancing and health check options).
	ProxyExtra string
	Frontends  []string // front-end HTTP addresses, default 127.0.0.2:8080 and 127.0.0.3:8080
	AdminBase  int      // admin port of the back-end; front-end i uses AdminBase+1+i. Default 2019.
	// Transport between front-end and back-end: "tmp" (default), or the
	// peers TMP is measured against: "http1" (Caddy's http transport,
	// HTTP/1.1 keep-alive over TCP) and "h2c" (HTTP/2 over cleartext TCP).
	Transport string
	// BackendExtra is inserted in every back-end site block, before its
	// reverse_proxy (load_index, for one).
	BackendExtra string
	// OriginArgs are extra arguments to `conductor origin` (-max-rps …).
	OriginArgs []string
	// Manager, if set, is the listen address of a shifting manager (process
	// "manager", `conductor_manager` in its own Caddy). Its operators are
	// "admin" with ManagerAdminKey and "viewer" (read-only) with
	// ManagerReadKey (random when empty). Every node then runs
	// `conductor_agent`, enrolled with a join token the topology mints as
	// the admin once the manager is up.
	Manager         string
	ManagerAdminKey string
	ManagerReadKey  string
	// BundleKey signs the topology's bundles (random when nil): front-ends
	// refuse bundles it did not sign. BundleKeyFile holds it for
	// `conductor bundle build -key`.
	BundleKey ed25519.PrivateKey
	// ManagerExtra is inserted in the manager's conductor_manager block.
	ManagerExtra string
	// BackendConductor is inserted in every back-end's `conductor` global
	// block (the services it serves over TMP, for one).
	BackendConductor string
	// FrontendGlobal is inserted in every front-end's global options (a
	// `layer4` app, for one); "{frontend_host}" in it becomes the
	// front-end's host.
	FrontendGlobal string
	// FrontendSites is appended to every front-end's Caddyfile: further
	// site blocks ("{frontend_host}" in it becomes the front-end's host).
	FrontendSites string
	// FrontendRegions gives front-end i its region (default "local").
	FrontendRegions []string
	// FrontendExtra is inserted in every front-end site block (tests use it
	// to add directives); "{frontend}" in it becomes the front-end's address.
	FrontendExtra string
	Progress      func(format string, args ...any)
	Log           io.Writer // process output; default: files in Dir
}

func (o *Options) defaults() {
	if o.OriginAddr == "" {
		o.OriginAddr = "127.0.0.1:9080"
	}
	if o.BackendTMP == "" {
		o.BackendTMP = "127.0.0.1:4433"
	}
	if len(o.Frontends) == 0 {
		o.Frontends = []string{"127.0.0.2:8080", "127.0.0.3:8080"}
	}
	if o.AdminBase == 0 {
		o.AdminBase = 2019
	}
	if o.Transport == "" {
		o.Transport = "tmp"
	}
	if o.Site == "" {
		o.Site = "shop.example"
	}
	if o.Progress == nil {
		o.Progress = func(string, ...any) {}
	}
	if o.ManagerAdminKey == "" {
		o.ManagerAdminKey = randomKey()
	}
	if o.ManagerReadKey == "" {
		o.ManagerReadKey = randomKey()
	}
	if o.BundleKey == nil {
		_, o.BundleKey, _ = ed25519.GenerateKey(nil)
	}
}

func randomKey() string {
	b := make([]byte, 24)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Topology is a running set of processes.
type Topology struct {
	Opts   Options
	mu     sync.Mutex
	procs  map[string]*exec.Cmd
	agents map[string]string // node → its conductor_agent block, once enrolled
	// feSockets are the front-ends' listening sockets, made here and
	// handed to each front-end as fd 3 (socket activation, `bind fd/3`).
	// One socket lives across every reload and restart: with a socket per
	// config (Caddy's SO_REUSEPORT listeners), the kernel resets the
	// connections still queued on the old one when it closes
	// (https://lwn.net/Articles/542629/), so a reload cost clients a reset.
	feSockets []*os.File
}

// BackendAdmin returns the (first) back-end's admin address.
func (t *Topology) BackendAdmin() string { return t.BackendAdminN(0) }

// BackendAdminN returns back-end i's admin address.
func (t *Topology) BackendAdminN(i int) string {
	if i == 0 {
		return "127.0.0.1:" + strconv.Itoa(t.Opts.AdminBase)
	}
	return "127.0.0.1:" + strconv.Itoa(t.Opts.AdminBase+len(t.Opts.Frontends)+i)
}

func (t *Topology) backends() []string {
	return append([]string{t.Opts.BackendTMP}, t.Opts.MoreBackends...)
}

func backendName(i int) string {
	if i == 0 {
		return "backend"
	}
	return fmt.Sprintf("backend%d", i+1)
}

// FrontendAdmin returns front-end i's admin address.
func (t *Topology) FrontendAdmin(i int) string {
	return "127.0.0.1:" + strconv.Itoa(t.Opts.AdminBase+1+i)
}

// FrontendURL returns the base URL of front-end i.
func (t *Topology) FrontendURL(i int) string { return "http://" + t.Opts.Frontends[i] }

// BackendConfig returns back-end i's Caddyfile path.
func (t *Topology) BackendConfig(i int) string {
	return filepath.Join(t.Opts.Dir, backendName(i)+".Caddyfile")
}

// FrontendConfig returns front-end i's Caddyfile path.
func (t *Topology) FrontendConfig(i int) string {
	return filepath.Join(t.Opts.Dir, fmt.Sprintf("frontend%d.Caddyfile", i+1))
}

func (t *Topology) globals(admin, name, role string) string {
	return t.globalsIn(admin, name, role, "local", "")
}

func (t *Topology) globalsIn(admin, name, role, region, extra string) string {
	conductorExtra := ""
	if role == "backend" && t.Opts.BackendConductor != "" {
		conductorExtra = "\t\t" + t.Opts.BackendConductor + "\n"
	}
	return fmt.Sprintf(`{
	admin %s
	storage file_system %s
	skip_install_trust
	persist_config off
	servers {
		trusted_proxies static 127.0.0.0/8
	}
	conductor {
		name %s
		role %s
		region %s
%s	}
%s}
`, admin, filepath.Join(t.Opts.Dir, "storage"), name, role, region, conductorExtra, extra)
}

// frontendRegion is front-end i's region.
func (t *Topology) frontendRegion(i int) string {
	if i < len(t.Opts.FrontendRegions) && t.Opts.FrontendRegions[i] != "" {
		return t.Opts.FrontendRegions[i]
	}
	return "local"
}

// ManagerURL is the manager's base URL: HTTPS, with a certificate from
// ManagerCA.
func (t *Topology) ManagerURL() string { return "https://" + t.Opts.Manager }

// ManagerCA is the fleet's root, which the manager writes to its state
// directory when it starts and whose CA signed its certificate: agents
// and DNS trust it.
func (t *Topology) ManagerCA() string {
	return filepath.Join(t.Opts.Dir, "manager-state", "fleet-ca.crt")
}

// ManagerClient is an HTTP client that trusts the manager's certificate.
func (t *Topology) ManagerClient() *http.Client {
	pool := x509.NewCertPool()
	if pem, err := os.ReadFile(t.ManagerCA()); err == nil {
		pool.AppendCertsFromPEM(pem)
	}
	return &http.Client{Timeout: 40 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

// AdminDo sends a request to the manager as the admin operator (hdr:
// name, value, …) and returns the status and the body.
func (t *Topology) AdminDo(method, path string, body []byte, hdr ...string) (int, []byte, error) {
	req, err := http.NewRequest(method, t.ManagerURL()+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+t.Opts.ManagerAdminKey)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := t.ManagerClient().Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	return resp.StatusCode, b, err
}

// JoinToken mints a join token for a node, as the admin.
func (t *Topology) JoinToken(node, role string, hosts ...string) (string, error) {
	body, _ := json.Marshal(map[string]any{"node": node, "role": role, "hosts": hosts})
	req, _ := http.NewRequest(http.MethodPost, t.ManagerURL()+"/v1/join-tokens", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+t.Opts.ManagerAdminKey)
	resp, err := t.ManagerClient().Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var ans struct {
		Token string `json:"token"`
	}
	if resp.StatusCode != http.StatusCreated || json.NewDecoder(resp.Body).Decode(&ans) != nil {
		return "", fmt.Errorf("minting a join token for %s: %s", node, resp.Status)
	}
	return ans.Token, nil
}

// BundleKeyFile holds the bundle signing key (hex, 0600), as `conductor
// bundle keygen` writes it.
func (t *Topology) BundleKeyFile() string { return filepath.Join(t.Opts.Dir, "bundle-signing.key") }

// AdminKeyFile holds the admin operator's key (0600), for the demo's
// instructions: a key on a command line would be in the shell history.
func (t *Topology) AdminKeyFile() string { return filepath.Join(t.Opts.Dir, "admin.key") }

// StatusURL is the status page's URL for the read-only operator (the key
// is in the fragment, which the browser never sends).
func (t *Topology) StatusURL() string { return t.ManagerURL() + "/status#key=" + t.Opts.ManagerReadKey }

// identityDir is where node keeps its enrolled certificate.
func (t *Topology) identityDir(node string) string {
	return filepath.Join(t.Opts.Dir, "identity", node)
}

// enrolNodes mints a join token for every node, as the admin, once the
// manager is up, and writes the nodes' configurations with their agents.
func (t *Topology) enrolNodes() error {
	if err := os.RemoveAll(filepath.Join(t.Opts.Dir, "identity")); err != nil {
		return err
	}
	// A fresh topology's front-ends start with empty bundle stores (a
	// store keeps the highest version it took, across restarts).
	for i := range t.Opts.Frontends {
		if err := os.RemoveAll(filepath.Join(t.Opts.Dir, fmt.Sprintf("bundles-fe%d", i+1))); err != nil {
			return err
		}
	}
	t.agents = map[string]string{}
	for i, b := range t.backends() {
		host, _, _ := net.SplitHostPort(b)
		a, err := t.agentBlock(fmt.Sprintf("be%d", i+1), "backend", fmt.Sprintf("\t\tregion local\n\t\taddr %s\n\t\tupstream %s\n", host, b), host)
		if err != nil {
			return err
		}
		t.agents[fmt.Sprintf("be%d", i+1)] = a
		if err := os.WriteFile(t.BackendConfig(i), []byte(t.BackendCaddyfile(i)), 0o644); err != nil {
			return err
		}
	}
	for i, fe := range t.Opts.Frontends {
		host, _, _ := net.SplitHostPort(fe)
		a, err := t.agentBlock(fmt.Sprintf("fe%d", i+1), "frontend", fmt.Sprintf("\t\tregion %s\n\t\taddr %s\n\t\tprobe %s\n\t\tpeer_listen %s:0\n\t\tbundle_dir %s\n\t\tsigning_key %s\n",
			t.frontendRegion(i), host, fe, host, filepath.Join(t.Opts.Dir, fmt.Sprintf("bundles-fe%d", i+1)), hex.EncodeToString(t.Opts.BundleKey.Public().(ed25519.PublicKey))), host)
		if err != nil {
			return err
		}
		t.agents[fmt.Sprintf("fe%d", i+1)] = a
		if err := os.WriteFile(t.FrontendConfig(i), []byte(t.FrontendCaddyfile(i, t.Opts.FrontendExtra)), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// agentBlock is a node's conductor_agent block, enrolled with a fresh join
// token (hosts are the addresses it may report).
func (t *Topology) agentBlock(node, role, body string, hosts ...string) (string, error) {
	tok, err := t.JoinToken(node, role, hosts...)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf(`	conductor_agent {
		manager %s
		join_token %s
		identity_dir %s
		ca_file %s
		node %s
		role %s
		interval 500ms
%s	}
`, t.ManagerURL(), tok, t.identityDir(node), t.ManagerCA(), node, role, body), nil
}

// ManagerConfig returns the manager's Caddyfile path.
func (t *Topology) ManagerConfig() string { return filepath.Join(t.Opts.Dir, "manager.Caddyfile") }

// ManagerCaddyfile runs the shifting manager and nothing else.
func (t *Topology) ManagerCaddyfile() string {
	return fmt.Sprintf(`{
	admin off
	storage file_system %s
	persist_config off
	conductor_manager {
		listen %s
		operator admin admin %s
		operator viewer read %s
		state_dir %s
		%s
	}
}
`, filepath.Join(t.Opts.Dir, "storage"), t.Opts.Manager, t.Opts.ManagerAdminKey, t.Opts.ManagerReadKey,
		filepath.Join(t.Opts.Dir, "manager-state"), t.Opts.ManagerExtra)
}

// BackendCaddyfile is back-end i's configuration: TMP in, origin out.
func (t *Topology) BackendCaddyfile(i int) string {
	host, port, _ := net.SplitHostPort(t.backends()[i])
	g := t.globals(t.BackendAdminN(i), fmt.Sprintf("be%d", i+1), "backend")
	if a := t.agents[fmt.Sprintf("be%d", i+1)]; a != "" {
		// Back-ends report too: load, requests and inventory.
		g = t.globalsIn(t.BackendAdminN(i), fmt.Sprintf("be%d", i+1), "backend", "local", a)
	}
	switch t.Opts.Transport {
	case "http1", "h2c":
		if t.Opts.Transport == "h2c" {
			g = strings.Replace(g, "\tservers {\n", "\tservers {\n\t\tprotocols h1 h2c\n", 1)
		}
		return g + fmt.Sprintf(`
http://:%s {
	bind %s
	header X-Backend be%d
	%s
	reverse_proxy %s
}
`, port, host, i+1, t.Opts.BackendExtra, t.Opts.OriginAddr)
	}
	return g + fmt.Sprintf(`
# Front-ends reach this site over TMP only.
http://:%s {
	bind tmp/%s
	header X-Backend be%d
	%s
	reverse_proxy %s
}
`, port, host, i+1, t.Opts.BackendExtra, t.Opts.OriginAddr)
}

// FrontendCaddyfile is front-end i's configuration: clients in, TMP out.
func (t *Topology) FrontendCaddyfile(i int, extra string) string {
	host, port, _ := net.SplitHostPort(t.Opts.Frontends[i])
	transport := "transport tmp"
	switch t.Opts.Transport {
	case "http1":
		transport = ""
	case "h2c":
		transport = "transport http {\n\t\t\tversions h2c\n\t\t}"
	}
	agentCfg, meter := t.agents[fmt.Sprintf("fe%d", i+1)], ""
	if agentCfg != "" {
		meter = "conductor_meter\n\tconductor_pull\n\tbundle\n\t"
	}
	bind := host
	if len(t.feSockets) > i {
		bind = "fd/3 # the socket the topology made: it survives reloads"
	}
	global := agentCfg + strings.ReplaceAll(t.Opts.FrontendGlobal, "{frontend_host}", host)
	upstreams := strings.Join(t.backends(), " ") + " {"
	if t.Opts.DynamicUpstreams && agentCfg != "" {
		upstreams = "{\n\t\tdynamic conductor {\n\t\t\tfallback " + strings.Join(t.backends(), " ") + "\n\t\t}"
	}
	return t.globalsIn(t.FrontendAdmin(i), fmt.Sprintf("fe%d", i+1), "frontend", t.frontendRegion(i), global) + fmt.Sprintf(`
http://:%s {
	bind %s
	%s
	reverse_proxy %s
		%s
		%s
	}
}
`, port, bind, meter+strings.ReplaceAll(extra, "{frontend}", t.Opts.Frontends[i]), upstreams, transport, t.Opts.ProxyExtra) +
		strings.ReplaceAll(t.Opts.FrontendSites, "{frontend_host}", host)
}

// DNSConfig returns the Corefile path.
func (t *Topology) DNSConfig() string { return filepath.Join(t.Opts.Dir, "Corefile") }

// Corefile answers for the site with the healthiest front-end.
func (t *Topology) Corefile() string {
	host, port, _ := net.SplitHostPort(t.Opts.DNSAddr)
	var fes strings.Builder
	for i, fe := range t.Opts.Frontends {
		h, _, _ := net.SplitHostPort(fe)
		fmt.Fprintf(&fes, "\t\tfrontend fe%d %s region local health http://%s/conductor/health\n", i+1, h, t.FrontendAdmin(i))
	}
	origin, _, _ := net.SplitHostPort(t.Opts.OriginAddr)
	return fmt.Sprintf(`%s:%s {
	bind %s
	conductor {
%s		region 127.0.0.0/8 local
		fallback %s
		ttl 10
		health_check 1s up 2 down 3
	}
	errors
}
`, t.Opts.Site, port, host, fes.String(), origin)
}

// Start launches origin, back-end and front-ends, in that order (the
// back-end creates the shared PKI CA before the front-ends need it), and
// waits until the shop answers through every front-end.
func Start(ctx context.Context, opts Options) (*Topology, error) {
	opts.defaults()
	t := &Topology{Opts: opts, procs: map[string]*exec.Cmd{}}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, err
	}
	for i := range t.backends() {
		if err := os.WriteFile(t.BackendConfig(i), []byte(t.BackendCaddyfile(i)), 0o644); err != nil {
			return nil, err
		}
	}
	for _, fe := range opts.Frontends {
		f, err := listenFile(fe)
		if err != nil {
			t.Stop()
			return nil, fmt.Errorf("front-end %s: %w", fe, err)
		}
		t.feSockets = append(t.feSockets, f)
	}
	for i := range opts.Frontends {
		if err := os.WriteFile(t.FrontendConfig(i), []byte(t.FrontendCaddyfile(i, opts.FrontendExtra)), 0o644); err != nil {
			return nil, err
		}
	}
	type step struct {
		name, what string
		ready      func() error
		after      func() error // once ready
	}
	if opts.Manager != "" {
		// A fresh topology's manager starts from nothing: its nodes enrol
		// again, and no assignment of an earlier run remains.
		if err := os.RemoveAll(filepath.Join(opts.Dir, "manager-state")); err != nil {
			return nil, err
		}
		if err := os.WriteFile(t.AdminKeyFile(), []byte(opts.ManagerAdminKey+"\n"), 0o600); err != nil {
			return nil, err
		}
		if err := os.WriteFile(t.BundleKeyFile(), []byte(hex.EncodeToString(opts.BundleKey)+"\n"), 0o600); err != nil {
			return nil, err
		}
		if err := os.WriteFile(t.ManagerConfig(), []byte(t.ManagerCaddyfile()), 0o644); err != nil {
			return nil, err
		}
	}
	originWhat := "origin shop on http://" + opts.OriginAddr
	if len(opts.OriginCommand) > 0 {
		originWhat = "origin " + filepath.Base(opts.OriginCommand[0]) + " on http://" + opts.OriginAddr
	}
	var steps []step
	if !opts.NoOrigin {
		steps = append(steps, step{"origin", originWhat, func() error { return httpOK("http://" + opts.OriginAddr + "/") }, nil})
	}
	if opts.Manager != "" {
		steps = append(steps, step{"manager", "shifting manager on " + t.ManagerURL(), func() error {
			resp, err := t.ManagerClient().Get(t.ManagerURL() + "/status")
			if err != nil {
				return err
			}
			resp.Body.Close()
			return nil
		}, t.enrolNodes})
	}
	for i, b := range t.backends() {
		admin := t.BackendAdminN(i)
		steps = append(steps, step{backendName(i), "back-end Caddy (TMP on " + b + ")", func() error { return httpOK("http://" + admin + "/config/") }, nil})
	}
	for i := range opts.Frontends {
		i := i
		ready := func() error { return httpOK(t.FrontendURL(i) + "/") }
		if opts.NoOrigin {
			ready = func() error { return httpAnswers(t.FrontendURL(i) + "/") }
		}
		steps = append(steps, step{fmt.Sprintf("frontend%d", i+1), "front-end Caddy on " + t.FrontendURL(i), ready, nil})
	}
	if opts.DNSAddr != "" {
		if err := os.WriteFile(t.DNSConfig(), []byte(t.Corefile()), 0o644); err != nil {
			return nil, err
		}
		steps = append(steps, step{"dns", "CoreDNS with the conductor plugin on " + opts.DNSAddr, func() error { return dnsOK(opts.DNSAddr, opts.Site) }, nil})
	}
	for _, s := range steps {
		opts.Progress("starting %s …", s.what)
		if s.name == "origin" && opts.OriginRunning {
			opts.Progress("the origin is already running")
		} else if err := t.StartProc(s.name); err != nil {
			t.Stop()
			return nil, err
		}
		if err := waitFor(ctx, 60*time.Second, s.ready); err != nil {
			t.Stop()
			return nil, fmt.Errorf("%s did not become ready: %w (log: %s)", s.name, err, t.logPath(s.name))
		}
		if s.after != nil {
			if err := s.after(); err != nil {
				t.Stop()
				return nil, fmt.Errorf("%s: %w", s.name, err)
			}
		}
		opts.Progress("%s ready", s.name)
	}
	return t, nil
}

func (t *Topology) logPath(name string) string { return filepath.Join(t.Opts.Dir, name+".log") }

// listenFile makes a listening TCP socket on addr and returns it as a file
// to hand to a child process.
func listenFile(addr string) (*os.File, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	defer ln.Close() // the file is a duplicate: the socket stays open
	return ln.(*net.TCPListener).File()
}

// StartProc starts one named process ("origin", "backend", "frontendN").
func (t *Topology) StartProc(name string) error {
	var args []string
	var extra []*os.File
	switch {
	case name == "origin":
		args = append([]string{"origin", "-listen", t.Opts.OriginAddr, "-name", "shop"}, t.Opts.OriginArgs...)
	case name == "dns":
		args = []string{"dns", "-conf", t.DNSConfig()}
	case name == "manager":
		args = []string{"caddy", "run", "--config", t.ManagerConfig(), "--adapter", "caddyfile"}
	case strings.HasPrefix(name, "backend"):
		i := 0
		if name != "backend" {
			if _, err := fmt.Sscanf(name, "backend%d", &i); err != nil || i < 2 || i > len(t.backends()) {
				return fmt.Errorf("unknown process %q", name)
			}
			i--
		}
		args = []string{"caddy", "run", "--config", t.BackendConfig(i), "--adapter", "caddyfile"}
	default:
		var i int
		if _, err := fmt.Sscanf(name, "frontend%d", &i); err != nil || i < 1 || i > len(t.Opts.Frontends) {
			return fmt.Errorf("unknown process %q", name)
		}
		args = []string{"caddy", "run", "--config", t.FrontendConfig(i - 1), "--adapter", "caddyfile"}
		if len(t.feSockets) >= i {
			extra = []*os.File{t.feSockets[i-1]} // fd 3
		}
	}
	cmd := exec.Command(t.Opts.Binary, args...)
	if name == "origin" && len(t.Opts.OriginCommand) > 0 {
		cmd = exec.Command(t.Opts.OriginCommand[0], t.Opts.OriginCommand[1:]...)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.ExtraFiles = extra
	cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+filepath.Join(t.Opts.Dir, "xdg-data"), "XDG_CONFIG_HOME="+filepath.Join(t.Opts.Dir, "xdg-config"))
	if t.Opts.Log != nil {
		cmd.Stdout, cmd.Stderr = t.Opts.Log, t.Opts.Log
	} else {
		f, err := os.OpenFile(t.logPath(name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		cmd.Stdout, cmd.Stderr = f, f
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	t.mu.Lock()
	t.procs[name] = cmd
	t.mu.Unlock()
	return nil
}

// StopProc stops one process: SIGINT, then SIGKILL after 10 s.
func (t *Topology) StopProc(name string) error {
	t.mu.Lock()
	cmd := t.procs[name]
	delete(t.procs, name)
	t.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return nil
	}
	syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
	if f, ok := cmd.Stdout.(*os.File); ok && f != os.Stdout && f != os.Stderr {
		f.Close()
	}
	return nil
}

// Stop stops every process, front-ends first.
func (t *Topology) Stop() {
	t.mu.Lock()
	var names []string
	for n := range t.procs {
		names = append(names, n)
	}
	t.mu.Unlock()
	order := func(n string) int {
		switch {
		case n == "origin":
			return 2
		case strings.HasPrefix(n, "backend"), n == "dns", n == "manager":
			return 1
		}
		return 0
	}
	for pass := 0; pass < 3; pass++ {
		for _, n := range names {
			if order(n) == pass {
				t.StopProc(n)
			}
		}
	}
	for _, f := range t.feSockets {
		f.Close()
	}
	t.feSockets = nil
}

// WaitReady waits until a process answers again (after a restart).
func (t *Topology) WaitReady(ctx context.Context, url string) error {
	return waitFor(ctx, 60*time.Second, func() error { return httpOK(url) })
}

// Reload applies front-end i's (possibly edited) Caddyfile with `caddy reload`.
func (t *Topology) Reload(i int, extra string) error {
	if err := os.WriteFile(t.FrontendConfig(i), []byte(t.FrontendCaddyfile(i, extra)), 0o644); err != nil {
		return err
	}
	out, err := exec.Command(t.Opts.Binary, "caddy", "reload", "--config", t.FrontendConfig(i), "--adapter", "caddyfile", "--address", t.FrontendAdmin(i), "--force").CombinedOutput()
	if err != nil {
		return fmt.Errorf("reload: %v: %s", err, out)
	}
	return nil
}

func httpOK(url string) error {
	status, err := httpStatus(url)
	if err == nil && status != http.StatusOK {
		err = fmt.Errorf("%s: %d", url, status)
	}
	return err
}

// httpAnswers is nil once url answers at all.
func httpAnswers(url string) error {
	_, err := httpStatus(url)
	return err
}

func httpStatus(url string) (int, error) {
	c := &http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

func waitFor(ctx context.Context, limit time.Duration, ready func() error) error {
	deadline := time.Now().Add(limit)
	var err error
	for time.Now().Before(deadline) {
		if err = ready(); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	if err == nil {
		err = errors.New("timed out")
	}
	return err
}

// dnsOK asks the DNS server for the site's A record.
func dnsOK(addr, site string) error {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(site), dns.TypeA)
	r, _, err := (&dns.Client{Timeout: time.Second}).Exchange(m, addr)
	if err != nil {
		return err
	}
	if len(r.Answer) == 0 {
		return fmt.Errorf("no answer for %s", site)
	}
	return nil
}
