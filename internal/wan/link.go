package wan

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ErrNotRoot is returned where namespaces and TUN devices need root.
var ErrNotRoot = errors.New("wan: needs root (network namespaces and TUN devices)")

// nsPrefix names our namespaces: cwan-<pid>-<n>-a|b, so that a later run
// can tell leftovers of a dead process from a live one's.
const nsPrefix = "cwan-"

var linkSeq atomic.Int32

// Link joins namespace A and namespace B through the emulator. A process
// in A reaches B at AddrB, and B reaches A at AddrA.
type Link struct {
	NSA, NSB     string
	AddrA, AddrB netip.Addr

	tunA, tunB *os.File
	ab, ba     *impairer
	stop       chan struct{}
	wg         sync.WaitGroup
	closeOnce  sync.Once
}

// New creates the namespaces and the link with the given per-direction
// profiles (ab: A→B). TCP in the namespaces uses the host's default
// congestion control.
func New(ab, ba Profile) (*Link, error) { return NewCC(ab, ba, "") }

// NewCC is New with TCP's congestion control in both namespaces set to cc
// ("cubic", "bbr"; "" keeps the host's default), for peers that cannot set
// it on their own sockets (a Caddy process's listeners and dials).
func NewCC(ab, ba Profile, cc string) (*Link, error) {
	if os.Geteuid() != 0 {
		return nil, ErrNotRoot
	}
	if err := ab.validate(); err != nil {
		return nil, err
	}
	if err := ba.validate(); err != nil {
		return nil, err
	}
	CleanupStale()
	n := int(linkSeq.Add(1))
	if n > 16000 {
		return nil, errors.New("wan: too many links")
	}
	base := fmt.Sprintf("%s%d-%d", nsPrefix, os.Getpid(), n)
	// 198.18.0.0/15, one /30 per link.
	addr := func(host int) netip.Addr {
		v := 4*n + host
		return netip.AddrFrom4([4]byte{198, 18 + byte(v>>16), byte(v >> 8), byte(v)})
	}
	l := &Link{NSA: base + "-a", NSB: base + "-b", AddrA: addr(1), AddrB: addr(2), stop: make(chan struct{})}
	tunName := func(side string) string { return fmt.Sprintf("cw%d%s", n, side) }
	fail := func(err error) (*Link, error) {
		l.Close()
		return nil, err
	}
	if err := addNamespaces(cc, l.NSA, l.NSB); err != nil {
		return fail(err)
	}
	var err error
	if l.tunA, err = openTUN(tunName("a")); err != nil {
		return fail(err)
	}
	if l.tunB, err = openTUN(tunName("b")); err != nil {
		return fail(err)
	}
	for _, side := range []struct {
		ns, tun     string
		local, peer netip.Addr
	}{{l.NSA, tunName("a"), l.AddrA, l.AddrB}, {l.NSB, tunName("b"), l.AddrB, l.AddrA}} {
		for _, args := range [][]string{
			{"link", "set", side.tun, "netns", side.ns},
			{"-n", side.ns, "addr", "add", side.local.String(), "peer", side.peer.String(), "dev", side.tun},
			// A long device queue: the emulator's own queue must be
			// the only bottleneck, not the TUN's (500 packets by default).
			{"-n", side.ns, "link", "set", side.tun, "txqueuelen", "10000"},
			{"-n", side.ns, "link", "set", side.tun, "up"},
			{"-n", side.ns, "link", "set", "lo", "up"},
		} {
			if err := ip(args...); err != nil {
				return fail(err)
			}
		}
	}
	l.ab = newImpairer(ab, uint64(n)*2+1, func(b []byte) { l.tunB.Write(b) })
	l.ba = newImpairer(ba, uint64(n)*2+2, func(b []byte) { l.tunA.Write(b) })
	for _, run := range []func(){
		func() { l.ab.run(l.stop) },
		func() { l.ba.run(l.stop) },
		func() { forward(l.tunA, l.ab) },
		func() { forward(l.tunB, l.ba) },
	} {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			run()
		}()
	}
	return l, nil
}

// ccMu serialises addNamespaces' change of the host's default congestion
// control, which is the kernel's, not this package's: two links made at
// once must not see each other's.
var ccMu sync.Mutex

const ccSysctl = "/proc/sys/net/ipv4/tcp_congestion_control"

// addNamespaces creates the namespaces. With cc set, they start with that
// congestion control: a namespace copies the initial namespace's default
// when it is made. Setting it inside the namespace afterwards would be
// cleaner, but some sandboxes (this project's CI among them) refuse that
// sysctl in a child namespace and allow it in the initial one; so the host
// default is changed for the moment of creation and put back at once.
func addNamespaces(cc string, names ...string) error {
	if cc != "" {
		ccMu.Lock()
		defer ccMu.Unlock()
		was, err := os.ReadFile(ccSysctl)
		if err != nil {
			return fmt.Errorf("wan: congestion control: %w", err)
		}
		if err := os.WriteFile(ccSysctl, []byte(cc), 0o644); err != nil {
			return fmt.Errorf("wan: congestion control %q: %w", cc, err)
		}
		defer os.WriteFile(ccSysctl, was, 0o644)
	}
	for _, ns := range names {
		if err := ip("netns", "add", ns); err != nil {
			return err
		}
	}
	if cc != "" {
		for _, ns := range names {
			got, err := exec.Command("ip", "netns", "exec", ns, "cat", ccSysctl).Output()
			if err != nil || strings.TrimSpace(string(got)) != cc {
				return fmt.Errorf("wan: namespace %s has congestion control %q, not %q (%v)", ns, strings.TrimSpace(string(got)), cc, err)
			}
		}
	}
	return nil
}

func openTUN(name string) (*os.File, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("wan: open /dev/net/tun: %w", err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("wan: TUNSETIFF %s: %w", name, err)
	}
	// Non-blocking, so that the runtime poller serves it and Close ends
	// a pending Read.
	return os.NewFile(uintptr(fd), "tun:"+name), nil
}

// forward reads packets from a TUN device into an impairer until the
// device is closed.
func forward(tun *os.File, im *impairer) {
	buf := make([]byte, 65536)
	for {
		n, err := tun.Read(buf)
		if err != nil {
			return
		}
		im.offer(buf[:n], time.Now())
	}
}

// Stats returns what each direction did so far.
func (l *Link) Stats() (ab, ba Stats) { return l.ab.snapshot(), l.ba.snapshot() }

// Close stops the forwarder and removes the namespaces (and with them the
// TUN devices).
func (l *Link) Close() error {
	l.closeOnce.Do(func() {
		close(l.stop)
		if l.tunA != nil {
			l.tunA.Close()
		}
		if l.tunB != nil {
			l.tunB.Close()
		}
		l.wg.Wait()
		for _, ns := range []string{l.NSA, l.NSB} {
			ip("netns", "del", ns)
		}
	})
	return nil
}

// InA runs fn with the calling goroutine's thread in namespace A: sockets
// it creates live there for good.
func (l *Link) InA(fn func() error) error { return InNS(l.NSA, fn) }

// InB is InA for namespace B.
func (l *Link) InB(fn func() error) error { return InNS(l.NSB, fn) }

// InNS runs fn inside the named network namespace.
func InNS(ns string, fn func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
	if err != nil {
		return err
	}
	defer orig.Close()
	target, err := os.Open("/run/netns/" + ns)
	if err != nil {
		return err
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("wan: setns %s: %w", ns, err)
	}
	defer unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET)
	return fn()
}

// CleanupStale removes namespaces left by emulator runs whose process is
// gone (a crashed test).
func CleanupStale() {
	entries, err := os.ReadDir("/run/netns")
	if err != nil {
		return
	}
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, nsPrefix) {
			continue
		}
		pidStr, _, _ := strings.Cut(strings.TrimPrefix(name, nsPrefix), "-")
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			ip("netns", "del", name)
		}
	}
}

func ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("wan: ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
