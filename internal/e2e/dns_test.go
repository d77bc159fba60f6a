package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/conductor-edge/conductor/internal/topology"
)

// `conductor dns` is CoreDNS: it serves a Corefile with stock plugins.
func TestConductorDNSServesACorefile(t *testing.T) {
	port := freePort(t, "127.0.0.1")
	dir := t.TempDir()
	corefile := filepath.Join(dir, "Corefile")
	os.WriteFile(corefile, []byte(fmt.Sprintf(`example.test:%d {
	bind 127.0.0.1
	template IN A example.test {
		answer "{{ .Name }} 60 IN A 127.0.0.2"
	}
	errors
}
`, port)), 0o644)
	startDNS(t, corefile)
	r, err := exchangeRetry(fmt.Sprintf("127.0.0.1:%d", port), "shop.example.test.", dns.TypeA)
	if err != nil {
		b, _ := os.ReadFile(filepath.Join(dir, "dns.log"))
		t.Fatalf("no answer: %v\n%s", err, b)
	}
	if len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "127.0.0.2" {
		t.Fatalf("answer %v", r.Answer)
	}
}

// The demo topology's DNS answers shop.example with a front-end.
func TestTopologyDNSAnswersAFrontend(t *testing.T) {
	tp := shared(t)
	m := new(dns.Msg)
	m.SetQuestion("shop.example.", dns.TypeA)
	r, _, err := (&dns.Client{Timeout: 2 * time.Second}).Exchange(m, tp.Opts.DNSAddr)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Answer) != 1 {
		t.Fatalf("answer %v", r)
	}
	ip := r.Answer[0].(*dns.A).A.String()
	if ip != "127.0.0.2" && ip != "127.0.0.3" {
		t.Fatalf("shop.example → %s, want a front-end", ip)
	}
}

// Corefile.example starts and answers (on free ports).
func TestCorefileExampleRuns(t *testing.T) {
	b, err := os.ReadFile("../../Corefile.example")
	if err != nil {
		t.Fatal(err)
	}
	port := freePort(t, "127.0.0.1")
	prom := freePort(t, "127.0.0.1")
	cf := strings.ReplaceAll(string(b), "shop.example:5300", fmt.Sprintf("shop.example:%d", port))
	cf = strings.ReplaceAll(cf, "127.0.0.1:9253", fmt.Sprintf("127.0.0.1:%d", prom))
	dir := t.TempDir()
	path := filepath.Join(dir, "Corefile")
	os.WriteFile(path, []byte(cf), 0o644)
	startDNS(t, path)
	r, err := exchangeRetry(fmt.Sprintf("127.0.0.1:%d", port), "shop.example.", dns.TypeA)
	if err != nil || len(r.Answer) != 1 {
		t.Fatalf("Corefile.example: %v %v", r, err)
	}
}

// startDNS runs `conductor dns` on a Corefile until the test ends; its
// output goes to dns.log beside the Corefile.
func startDNS(t *testing.T, corefile string) {
	t.Helper()
	cmd := exec.Command(binary, "dns", "-conf", corefile)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := os.Create(filepath.Join(filepath.Dir(corefile), "dns.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		cmd.Wait()
		out.Close()
	})
}

// exchangeRetry asks server for name, retrying for up to 10 s while the
// server starts.
func exchangeRetry(server, name string, qtype uint16) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	c := &dns.Client{Timeout: time.Second}
	var r *dns.Msg
	var err error
	for i := 0; i < 100; i++ {
		if r, _, err = c.Exchange(m, server); err == nil {
			return r, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return r, err
}

// In static mode (no manager), DNS follows each front-end's load from its
// health endpoint: a busy front-end is answered after an idle one, and
// both are answered again once it is idle.
func TestStaticDNSFollowsLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: end-to-end")
	}
	tp, err := topology.Start(context.Background(), topology.Options{
		Binary:     binary,
		Dir:        filepath.Join(tmpDir, "dnsload"),
		OriginAddr: fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1")),
		BackendTMP: fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1")),
		Frontends:  []string{fmt.Sprintf("127.0.0.21:%d", freePort(t, "127.0.0.21")), fmt.Sprintf("127.0.0.22:%d", freePort(t, "127.0.0.22"))},
		AdminBase:  freeAdminBase(t, 3),
		DNSAddr:    fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1")),
		Progress:   func(f string, a ...any) { t.Logf(f, a...) },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Stop()
	answers := func(n int) map[string]int {
		seen := map[string]int{}
		for range n {
			r, err := exchangeRetry(tp.Opts.DNSAddr, "shop.example.", dns.TypeA)
			if err != nil || len(r.Answer) != 1 {
				t.Fatalf("DNS: %v %v", r, err)
			}
			seen[r.Answer[0].(*dns.A).A.String()]++
		}
		return seen
	}
	// The health endpoint says the load.
	resp, err := client.Get("http://" + tp.FrontendAdmin(0) + "/conductor/health")
	if err != nil || resp.StatusCode != 200 || resp.Header.Get("Conductor-Load") == "" {
		t.Fatalf("health endpoint: %v %v", resp, err)
	}
	resp.Body.Close()
	waitUntil(t, 20*time.Second, "both front-ends in the answers", func() bool { return len(answers(30)) == 2 })

	// fe1 moves bulk bodies over TMP: its process is busy.
	stop := loadLoop(8, func() {
		if resp, err := client.Get(tp.FrontendURL(0) + "/bytes/1048576"); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
	loaded := func() bool {
		s := answers(20)
		return s["127.0.0.22"] == 20
	}
	var load string
	waitUntil(t, 20*time.Second, "DNS to answer only the idle front-end", func() bool {
		if r, err := client.Get("http://" + tp.FrontendAdmin(0) + "/conductor/health"); err == nil {
			load = r.Header.Get("Conductor-Load")
			r.Body.Close()
		}
		return loaded()
	})
	t.Logf("busy front-end's load: %s", load)
	stop()
	waitUntil(t, 20*time.Second, "both front-ends again", func() bool { return len(answers(30)) == 2 })
}

// aRecords asks server for name's A records (from subnet, by ECS, when
// given) and returns their addresses, sorted; nil if it does not answer.
func aRecords(server, name, subnet string) []string {
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeA)
	if subnet != "" {
		m.SetEdns0(1232, false)
		_, n, _ := net.ParseCIDR(subnet)
		m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: n.IP})
	}
	r, _, err := (&dns.Client{Timeout: time.Second}).Exchange(m, server)
	if err != nil {
		return nil
	}
	var ips []string
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok {
			ips = append(ips, a.A.String())
		}
	}
	slices.Sort(ips)
	return ips
}
