package topology

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
)

// Ports handed out here come from below the kernel's ephemeral range
// (net.ipv4.ip_local_port_range, 32768–60999 by default). A port the
// kernel picked for a probe and then released is soon another outgoing
// connection's local port, in any process: a test that bound it a moment
// later found it taken ("bind: address already in use" for a front-end's
// admin port, once in three ./test.sh runs). The kernel never gives out a
// port below that range on its own, so a free one stays free until a
// program asks for it by number.
const lowestPort = 10000

// ephemeralLow is the bottom of the kernel's ephemeral range.
func ephemeralLow() int {
	lo := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		var a, z int
		if n, _ := fmt.Sscanf(string(b), "%d %d", &a, &z); n == 2 && a > lowestPort+1000 {
			lo = a
		}
	}
	return lo
}

// free reports whether port is free for TCP and UDP on ip.
func free(ip string, port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort(ip, fmt.Sprint(port)))
	if err != nil {
		return false
	}
	l.Close()
	u, err := net.ListenPacket("udp", net.JoinHostPort(ip, fmt.Sprint(port)))
	if err != nil {
		return false
	}
	u.Close()
	return true
}

// FreePort returns a port free for both TCP and UDP on ip (TMP listens on
// UDP where Caddy listens on TCP), below the ephemeral range.
func FreePort(ip string) (int, error) { return FreePortRunOn(ip, 1) }

// FreePortRun returns a port p such that p … p+n-1 are all free on
// 127.0.0.1: a topology's admin endpoints take consecutive ports.
func FreePortRun(n int) (int, error) { return FreePortRunOn("127.0.0.1", n) }

// FreePortRunOn is FreePortRun on ip.
func FreePortRunOn(ip string, n int) (int, error) {
	hi := ephemeralLow() - n
	for try := 0; try < 200; try++ {
		base := lowestPort + rand.IntN(hi-lowestPort)
		ok := true
		for p := base; p < base+n && ok; p++ {
			ok = free(ip, p)
		}
		if ok {
			return base, nil
		}
	}
	return 0, errors.New("no free port below the ephemeral range")
}
