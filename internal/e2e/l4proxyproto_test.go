package e2e

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestL4ProxyProtocolToOrigin: Debian's nginx, with its stream module,
// listens with `proxy_protocol` behind the back-end and answers every
// connection with the addresses the PROXY header gave it. Through the
// front-end, with `proxy_protocol v2` (and v1) on the back-end's service,
// it sees the client's own address and port and the front-end's listener,
// not the back-end's dial.
func TestL4ProxyProtocolToOrigin(t *testing.T) {
	for _, version := range []string{"v2", "v1"} {
		t.Run(version, func(t *testing.T) {
			origin := startNginxStream(t)
			l := startL4With(t, l4Setup{services: map[string]string{"who": origin + " {\n\t\t\tproxy_protocol " + version + "\n\t\t}"}})
			front := l.listen["who"]
			var answer string
			// The client dials from its own address, 127.0.0.9, so the
			// origin's answer cannot be the back-end's (127.0.0.1).
			waitUntil(t, 15*time.Second, "an answer through the front-end", func() bool {
				d := net.Dialer{Timeout: 2 * time.Second, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 9)}}
				c, err := d.Dial("tcp", front)
				if err != nil {
					return false
				}
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				b, _ := io.ReadAll(c)
				client := c.LocalAddr().(*net.TCPAddr)
				answer = strings.TrimSpace(string(b))
				want := fmt.Sprintf("%s %d %s", client.IP, client.Port, strings.Replace(front, ":", " ", 1))
				if answer != want {
					t.Logf("origin saw %q, want %q", answer, want)
					return false
				}
				return true
			})
		})
	}
}

// startNginxStream runs Debian's nginx with its stream module (Debian's
// libnginx-mod-stream) on a free port, expecting a PROXY protocol header
// and answering with what it said: client address and port, then the
// address and port the client reached.
func startNginxStream(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		bin = "/usr/sbin/nginx"
	}
	const module = "/usr/lib/nginx/modules/ngx_stream_module.so"
	if _, err := os.Stat(module); err != nil {
		t.Fatalf("nginx's stream module is not installed (.ci/run installs Debian's libnginx-mod-stream): %v", err)
	}
	dir := t.TempDir()
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1"))
	user := ""
	if os.Geteuid() == 0 {
		user = "user root root;"
	}
	conf := fmt.Sprintf(`load_module %s;
%s
worker_processes 1;
pid %[3]s/nginx.pid;
error_log %[3]s/error.log;
daemon off;
events { worker_connections 64; }
stream {
	server {
		listen %[4]s proxy_protocol;
		return "$proxy_protocol_addr $proxy_protocol_port $proxy_protocol_server_addr $proxy_protocol_server_port\n";
	}
}
`, module, user, dir, addr)
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-p", dir, "-c", confPath)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, _ := os.Create(filepath.Join(dir, "out.log"))
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); cmd.Wait(); out.Close() })
	waitUntil(t, 10*time.Second, "nginx to listen", func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return addr
}
