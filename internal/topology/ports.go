package topology

import (
	"errors"
	"fmt"
	"net"
)

// FreePort returns a port free for both TCP and UDP on ip (TMP listens on
// UDP where Caddy listens on TCP).
func FreePort(ip string) (int, error) {
	for i := 0; i < 50; i++ {
		l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if u, err := net.ListenPacket("udp", fmt.Sprintf("%s:%d", ip, port)); err == nil {
			u.Close()
			return port, nil
		}
	}
	return 0, errors.New("no free port")
}

// FreePortRun returns a port p such that p … p+n-1 are all free on
// 127.0.0.1: a topology's admin endpoints take consecutive ports.
func FreePortRun(n int) (int, error) {
	for try := 0; try < 100; try++ {
		base, err := FreePort("127.0.0.1")
		if err != nil {
			return 0, err
		}
		ok := true
		for p := base; p < base+n && ok; p++ {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
			if err != nil {
				ok = false
				continue
			}
			l.Close()
		}
		if ok {
			return base, nil
		}
	}
	return 0, fmt.Errorf("no run of %d free ports", n)
}
