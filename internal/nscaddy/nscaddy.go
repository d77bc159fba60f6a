// Package nscaddy starts Caddy (`conductor caddy run`) inside a network
// namespace of the emulated WAN (internal/wan), for the benchmarks and
// tests that put a front-end on the far side of a link. Its admin endpoint
// is a Unix socket, which the caller reaches from any namespace.
package nscaddy

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/conductor-edge/conductor/internal/wan"
)

// Proc is a Caddy started in a namespace.
type Proc struct {
	cmd *exec.Cmd
	log *os.File
}

// AdminSocket is where the Caddy called name in dir has its admin
// endpoint: put `admin unix/<AdminSocket>` in its global options.
func AdminSocket(dir, name string) string { return filepath.Join(dir, name+".sock") }

// AdminClient reaches the admin endpoint of the Caddy called name in dir
// (any host name in the URL: http://admin/config/).
func AdminClient(dir, name string) *http.Client {
	sock := AdminSocket(dir, name)
	return &http.Client{Timeout: time.Minute, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
}

// Start writes config to dir/<name>.Caddyfile, runs binary's Caddy on it
// in namespace ns ("": this one) (logging to dir/<name>.log), and waits until its admin
// endpoint (AdminSocket) answers. env adds to its environment (KEY=value).
func Start(ctx context.Context, dir, name, ns, config, binary string, env ...string) (*Proc, error) {
	cfg := filepath.Join(dir, name+".Caddyfile")
	if err := os.WriteFile(cfg, []byte(config), 0o644); err != nil {
		return nil, err
	}
	log, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		return nil, err
	}
	// `ip netns exec` enters the namespace and execs the binary in place,
	// so the pid is Caddy's own (its CPU time is read from /proc).
	cmd := exec.Command("ip", "netns", "exec", ns, binary, "caddy", "run", "--config", cfg, "--adapter", "caddyfile")
	if ns == "" {
		// The current namespace (loopback benchmarks).
		cmd = exec.Command(binary, "caddy", "run", "--config", cfg, "--adapter", "caddyfile")
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+filepath.Join(dir, "xdg-data"), "XDG_CONFIG_HOME="+filepath.Join(dir, "xdg-config"))
	cmd.Env = append(cmd.Env, env...)
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, err
	}
	c := &Proc{cmd: cmd, log: log}
	admin := AdminClient(dir, name)
	admin.Timeout = 2 * time.Second
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := admin.Get("http://admin/config/")
		if err == nil {
			resp.Body.Close()
			return c, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			c.Stop()
			return nil, fmt.Errorf("%s Caddy did not start: %v (log: %s)", name, err, log.Name())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// CPU is the process's user and system time so far, in seconds.
func (c *Proc) CPU() float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", c.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses and may hold
	// spaces: utime and stime are the 14th and 15th fields of the line.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / clockTicks
}

// clockTicks is USER_HZ, which Linux fixes at 100 for /proc.
const clockTicks = 100

// Stop interrupts Caddy, and kills it if it has not stopped in 10 s.
func (c *Proc) Stop() {
	syscall.Kill(-c.cmd.Process.Pid, syscall.SIGINT)
	done := make(chan struct{})
	go func() { c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
	c.log.Close()
}

// ServeInB serves h on addr inside the link's namespace B (the origin of
// a benchmark, beside a back-end Caddy there); Close the server to stop.
func ServeInB(l *wan.Link, addr string, h http.Handler) (*http.Server, error) {
	var ln net.Listener
	if err := l.InB(func() (err error) {
		ln, err = net.Listen("tcp", addr)
		return
	}); err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	return srv, nil
}
