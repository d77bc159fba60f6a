package wan

import (
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newLink(t *testing.T, ab, ba Profile) *Link {
	t.Helper()
	l, err := New(ab, ba)
	if errors.Is(err, ErrNotRoot) {
		t.Skip("needs root: network namespaces and TUN devices")
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// udpIn opens a UDP socket inside a namespace.
func udpIn(t *testing.T, in func(func() error) error, addr string) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	err := in(func() error {
		a, _ := net.ResolveUDPAddr("udp", addr)
		var err error
		c, err = net.ListenUDP("udp", a)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func within(t *testing.T, what string, got, want, tol float64) {
	t.Helper()
	t.Logf("%s: measured %.4g, set %.4g (%.1f%% off)", what, got, want, 100*math.Abs(got-want)/want)
	if math.Abs(got-want)/want > tol {
		t.Errorf("%s: measured %.4g, want %.4g ±%.0f%%", what, got, want, tol*100)
	}
}

// measure runs a timing measurement up to three times: on a CI machine
// running other test packages at once, a descheduled forwarder can spoil
// one run; a wrong emulator spoils all three.
func measure(t *testing.T, what string, want, tol float64, run func() float64) {
	t.Helper()
	var got float64
	for try := 0; try < 3; try++ {
		got = run()
		if math.Abs(got-want)/want <= tol {
			break
		}
		t.Logf("%s: try %d measured %.4g", what, try+1, got)
	}
	within(t, what, got, want, tol)
}

func TestRTTMatchesDelay(t *testing.T) {
	l := newLink(t, Profile{Delay: 20 * time.Millisecond}, Profile{Delay: 20 * time.Millisecond})
	port := 7000
	measure(t, "RTT ms (median)", 40, 0.05, func() float64 {
		port++ // a fresh echo server per try
		rtts := udpRTTs(t, l, port, 100)
		return rtts[len(rtts)/2]
	})

	// TCP goes through the same path: connecting takes one round trip.
	ln := func() net.Listener {
		var ln net.Listener
		l.InB(func() (err error) { ln, err = net.Listen("tcp", l.AddrB.String()+":7001"); return })
		return ln
	}()
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	measure(t, "TCP connect ms (median of 5)", 40, 0.05, func() float64 {
		var v []float64
		for i := 0; i < 5; i++ {
			var d time.Duration
			// Timed inside the namespace: entering it is not the link's.
			if err := l.InA(func() error {
				t0 := time.Now()
				conn, err := net.Dial("tcp", l.AddrB.String()+":7001")
				d = time.Since(t0)
				if err == nil {
					conn.Close()
				}
				return err
			}); err != nil {
				t.Fatal(err)
			}
			v = append(v, float64(d.Microseconds())/1000)
		}
		sort.Float64s(v)
		return v[len(v)/2]
	})
}

// blast sends n datagrams of size bytes from A to B at roughly rate bytes/s
// and returns how many arrived and the bytes/s at which they arrived.
func blast(t *testing.T, l *Link, n, size int, gap time.Duration) (received int, rate float64) {
	t.Helper()
	srv := udpIn(t, l.InB, l.AddrB.String()+":7100")
	srv.SetReadBuffer(8 << 20)
	done := make(chan struct{})
	var first, last time.Time
	var bytes int
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			srv.SetReadDeadline(time.Now().Add(time.Second))
			m, _, err := srv.ReadFromUDP(buf)
			if err != nil {
				return
			}
			if received == 0 {
				first = time.Now()
			} else {
				bytes += m + 28 // IP and UDP headers cross the link too
			}
			last = time.Now()
			received++
		}
	}()
	cl := udpIn(t, l.InA, l.AddrA.String()+":0")
	dst := &net.UDPAddr{IP: l.AddrB.AsSlice(), Port: 7100}
	msg := make([]byte, size)
	start := time.Now()
	for i := 0; i < n; i++ {
		cl.WriteToUDP(msg, dst)
		if gap > 0 {
			// Pace against the clock, not per packet sleeps.
			if ahead := time.Until(start.Add(time.Duration(i+1) * gap)); ahead > 0 {
				time.Sleep(ahead)
			}
		}
	}
	<-done
	if received > 1 {
		rate = float64(bytes) / last.Sub(first).Seconds()
	}
	return received, rate
}

func TestRandomLossMatchesSetting(t *testing.T) {
	l := newLink(t, Profile{Delay: time.Millisecond, Loss: 0.05}, Profile{Delay: time.Millisecond})
	const n = 40000
	got, _ := blast(t, l, n, 200, 20*time.Microsecond)
	ab, _ := l.Stats()
	if ab.Packets < n*95/100 {
		t.Fatalf("only %d of %d packets reached the emulator", ab.Packets, n)
	}
	within(t, "loss rate", 1-float64(got)/float64(ab.Packets), 0.05, 0.05)
}

func TestBurstLossIsBursty(t *testing.T) {
	ge := &GilbertElliott{P: 0.01, R: 0.2, LossGood: 0, LossBad: 0.5}
	l := newLink(t, Profile{Burst: ge}, Profile{})
	const n = 40000
	got, _ := blast(t, l, n, 200, 20*time.Microsecond)
	ab, _ := l.Stats()
	within(t, "Gilbert–Elliott loss rate", 1-float64(got)/float64(ab.Packets), ge.MeanLoss(), 0.15)
	if ab.LostBurst == 0 || ab.LostRandom != 0 {
		t.Fatalf("stats %+v", ab)
	}
}

func TestRateLimitMatchesSetting(t *testing.T) {
	const rate = 20e6 // bits/s
	l := newLink(t, Profile{Delay: 5 * time.Millisecond, RateBps: rate}, Profile{Delay: 5 * time.Millisecond})
	// Offer about twice the rate for 2 s: the queue fills, and the
	// arrival rate is the bottleneck's.
	_, got := blast(t, l, 6600, 1400, 300*time.Microsecond)
	ab, _ := l.Stats()
	if ab.DroppedQueue == 0 {
		t.Fatal("no drop-tail drops at twice the bottleneck rate")
	}
	within(t, "rate Mbit/s", got*8/1e6, rate/1e6, 0.05)
	var timed uint64
	for _, c := range ab.Late {
		timed += c
	}
	if timed != ab.Delivered {
		t.Fatalf("lateness counted for %d packets, %d delivered", timed, ab.Delivered)
	}
}

func TestTCPIsImpairedToo(t *testing.T) {
	const rate = 20e6
	l := newLink(t, Profile{Delay: 5 * time.Millisecond, RateBps: rate}, Profile{Delay: 5 * time.Millisecond})
	var ln net.Listener
	if err := l.InB(func() (err error) { ln, err = net.Listen("tcp", l.AddrB.String()+":7200"); return }); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan float64, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- 0
			return
		}
		defer c.Close()
		t0 := time.Now()
		n, _ := io.Copy(io.Discard, c)
		got <- float64(n) * 8 / time.Since(t0).Seconds()
	}()
	var conn net.Conn
	if err := l.InA(func() (err error) { conn, err = net.Dial("tcp", l.AddrB.String()+":7200"); return }); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := conn.Write(buf); err != nil {
			t.Fatal(err)
		}
	}
	conn.Close()
	goodput := <-got
	// TCP goodput sits just under the line rate (headers, slow start).
	t.Logf("TCP goodput %.2f Mbit/s through a %.0f Mbit/s bottleneck", goodput/1e6, rate/1e6)
	if goodput > rate*1.02 || goodput < rate*0.8 {
		t.Fatalf("TCP goodput %.2f Mbit/s, want just under %.0f", goodput/1e6, rate/1e6)
	}
}

func TestNamespacesAreRemovedAndLeftoversCleared(t *testing.T) {
	l := newLink(t, Profile{}, Profile{})
	a, b := l.NSA, l.NSB
	l.Close()
	for _, ns := range []string{a, b} {
		if _, err := os.Stat("/run/netns/" + ns); err == nil {
			t.Fatalf("namespace %s survived Close", ns)
		}
	}
	// A leftover of a crashed run (its pid is gone) is cleared.
	stale := nsPrefix + "999999-1-a"
	if err := ip("netns", "add", stale); err != nil {
		t.Fatal(err)
	}
	CleanupStale()
	if _, err := os.Stat("/run/netns/" + stale); err == nil {
		ip("netns", "del", stale)
		t.Fatal("stale namespace was not cleared")
	}
}

func TestBadProfilesAreRejected(t *testing.T) {
	for _, p := range []Profile{{Loss: 1.5}, {Delay: time.Millisecond, Jitter: time.Second}, {RateBps: -1}, {Delay: -1}} {
		if err := p.validate(); err == nil {
			t.Errorf("%+v accepted", p)
		}
	}
}

// A sub-millisecond delay is kept, not lost in the delivery slack.
func TestSmallDelayIsKept(t *testing.T) {
	l := newLink(t, Profile{Delay: 500 * time.Microsecond}, Profile{Delay: 500 * time.Microsecond})
	rtts := udpRTTs(t, l, 7300, 50)
	t.Logf("RTT with 2 × 0.5 ms delay: median %.2f ms", rtts[len(rtts)/2])
	if rtts[len(rtts)/2] < 0.9 {
		t.Fatalf("median RTT %.2f ms, want at least the 1 ms set", rtts[len(rtts)/2])
	}
}

// udpRTTs runs a UDP echo server in B and returns n sorted round trips
// (ms) from A, one ping at a time.
func udpRTTs(t *testing.T, l *Link, port, n int) []float64 {
	t.Helper()
	srv := udpIn(t, l.InB, fmt.Sprintf("%s:%d", l.AddrB, port))
	go func() {
		buf := make([]byte, 2048)
		for {
			m, a, err := srv.ReadFromUDP(buf)
			if err != nil {
				return
			}
			srv.WriteToUDP(buf[:m], a)
		}
	}()
	cl := udpIn(t, l.InA, l.AddrA.String()+":0")
	dst := &net.UDPAddr{IP: l.AddrB.AsSlice(), Port: port}
	buf := make([]byte, 2048)
	var rtts []float64
	for i := 0; i < n; i++ {
		t0 := time.Now()
		cl.WriteToUDP([]byte(fmt.Sprint(i)), dst)
		cl.SetReadDeadline(time.Now().Add(time.Second))
		if _, _, err := cl.ReadFromUDP(buf); err != nil {
			t.Fatal(err)
		}
		rtts = append(rtts, float64(time.Since(t0).Microseconds())/1000)
	}
	sort.Float64s(rtts)
	return rtts
}

// TestCongestionControlPerLink: a link made with a congestion control has
// it in both namespaces, another link made after it keeps the host's
// default, and the host's default is what it was.
func TestCongestionControlPerLink(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: network namespaces and TUN devices")
	}
	host, err := os.ReadFile(ccSysctl)
	if err != nil {
		t.Fatal(err)
	}
	want := "cubic"
	if strings.TrimSpace(string(host)) == "cubic" {
		want = "reno"
	}
	l, err := NewCC(Profile{}, Profile{}, want)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	plain := newLink(t, Profile{}, Profile{})
	ccIn := func(ns string) string {
		out, err := exec.Command("ip", "netns", "exec", ns, "cat", ccSysctl).Output()
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(out))
	}
	for _, ns := range []string{l.NSA, l.NSB} {
		if got := ccIn(ns); got != want {
			t.Errorf("%s: %s, want %s", ns, got, want)
		}
	}
	if got := ccIn(plain.NSA); got != strings.TrimSpace(string(host)) {
		t.Errorf("a plain link got %s, the host has %s", got, host)
	}
	if now, _ := os.ReadFile(ccSysctl); string(now) != string(host) {
		t.Errorf("the host's default is now %q, was %q", now, host)
	}
	if _, err := NewCC(Profile{}, Profile{}, "no-such-algorithm"); err == nil {
		t.Error("an unknown congestion control was accepted")
	}
	if now, _ := os.ReadFile(ccSysctl); string(now) != string(host) {
		t.Errorf("after a refused one, the host's default is %q, was %q", now, host)
	}
}
