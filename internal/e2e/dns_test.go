package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
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
