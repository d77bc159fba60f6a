package tmptransport

import (
	"context"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// pathProxy stands between a dialer and a listener, as a NAT or an attacker
// on the path does: it relays the dialer's packets to the listener from one
// of several sockets (exits), and chooses which. An exit that relays the
// listener's answers back is a real new path; one that does not is a victim
// whose address an attacker wrote into the packets.
type pathProxy struct {
	t      *testing.T
	front  net.PacketConn // the dialer sends here
	server net.Addr
	mu     sync.Mutex
	client net.Addr
	exit   *proxyExit
	wg     sync.WaitGroup
}

type proxyExit struct {
	conn     net.PacketConn
	relay    bool         // relay the listener's packets back to the dialer
	received atomic.Int64 // bytes the listener sent to this exit
	sent     atomic.Int64 // bytes this exit sent to the listener
}

func newPathProxy(t *testing.T, server net.Addr) *pathProxy {
	front, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &pathProxy{t: t, front: front, server: server}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		buf := make([]byte, 2048)
		for {
			n, from, err := front.ReadFrom(buf)
			if err != nil {
				return
			}
			p.mu.Lock()
			p.client = from
			e := p.exit
			p.mu.Unlock()
			e.sent.Add(int64(n))
			e.conn.WriteTo(buf[:n], server)
		}
	}()
	t.Cleanup(func() { front.Close(); p.wg.Wait() })
	return p
}

// newExit opens an exit on host.
func (p *pathProxy) newExit(host string, relay bool) *proxyExit {
	c, err := net.ListenPacket("udp", net.JoinHostPort(host, "0"))
	if err != nil {
		p.t.Fatal(err)
	}
	e := &proxyExit{conn: c, relay: relay}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		buf := make([]byte, 2048)
		for {
			n, _, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			e.received.Add(int64(n))
			p.mu.Lock()
			client := p.client
			p.mu.Unlock()
			if e.relay && client != nil {
				p.front.WriteTo(buf[:n], client)
			}
		}
	}()
	p.t.Cleanup(func() { c.Close() })
	return e
}

func (p *pathProxy) use(e *proxyExit) {
	p.mu.Lock()
	p.exit = e
	p.mu.Unlock()
}

// A session follows its peer to a new address only once the peer answered a
// challenge there. An attacker on the path who rewrites the source of the
// dialer's packets to a victim's address gets the victim at most 3× what
// the rewritten packets carried, and the session carries on over the old
// path; a real move (NAT rebinding) is validated and followed. Before, the
// listener followed any authenticated packet at once: the victim got the
// whole transfer.
func TestMigrationNeedsPathValidation(t *testing.T) {
	pki := getPKI(t)
	l, err := Listen("127.0.0.1:0", pki.serverConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	proxy := newPathProxy(t, l.Addr())
	first := proxy.newExit("127.0.0.1", true)
	proxy.use(first)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	c, err := DialConn(ctx, pc, proxy.front.LocalAddr(), pki.clientConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseWithError(NoError, "")
	s, err := l.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The listener sends 4 MiB down each stream the dialer opens.
	serveStreams(ctx, s, func(st *Stream) {
		io.Copy(io.Discard, st)
		st.Write(make([]byte, 4<<20))
		st.Close()
	})
	download := func() {
		t.Helper()
		st, err := c.OpenStream(ctx, 2)
		if err != nil {
			t.Fatal(err)
		}
		st.CloseWrite()
		n, err := io.Copy(io.Discard, st)
		if err != nil || n != 4<<20 {
			t.Fatalf("download: %d bytes, %v", n, err)
		}
	}
	download()
	home := s.RemoteAddr().String()

	// The attacker rewrites the source to a victim's address.
	victim := proxy.newExit("127.0.0.9", false)
	proxy.use(victim)
	download() // the session carries on over the old path
	got, gave := victim.received.Load(), victim.sent.Load()
	t.Logf("victim: sent %d bytes, received %d (%.2f×); the session stayed on %s", gave, got, float64(got)/float64(gave), s.RemoteAddr())
	if got > 3*gave {
		t.Errorf("the victim received %d bytes for %d sent: more than 3×", got, gave)
	}
	if s.RemoteAddr().String() != home {
		t.Errorf("the listener moved to %s without validating it", s.RemoteAddr())
	}

	// A real move: the new address answers the challenge, and the
	// listener follows it.
	moved := proxy.newExit("127.0.0.7", true)
	proxy.use(moved)
	download()
	deadline := time.Now().Add(5 * time.Second)
	for s.RemoteAddr().String() != moved.conn.LocalAddr().String() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if s.RemoteAddr().String() != moved.conn.LocalAddr().String() {
		t.Fatalf("the listener did not follow a validated move: remote %s, want %s", s.RemoteAddr(), moved.conn.LocalAddr())
	}
	download()
	if st := s.Stats(); st.Migrations != 1 {
		t.Errorf("%d migrations, want 1", st.Migrations)
	}
}

// sameAddr compares UDP addresses by value, as their String forms would.
func TestSameAddr(t *testing.T) {
	a := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 4433}
	for _, c := range []struct {
		b    net.Addr
		same bool
	}{
		{&net.UDPAddr{IP: net.ParseIP("127.0.0.1").To4(), Port: 4433}, true},
		{&net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 4434}, false},
		{&net.UDPAddr{IP: net.IPv4(127, 0, 0, 2), Port: 4433}, false},
		{&net.UDPAddr{IP: net.ParseIP("::1"), Port: 4433}, false},
		{&net.UDPAddr{IP: net.ParseIP("fe80::1"), Port: 4433, Zone: "eth0"}, false},
		{&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 4433}, true}, // another type: by String
	} {
		if got := sameAddr(a, c.b); got != c.same || got != (a.String() == c.b.String()) {
			t.Errorf("sameAddr(%v, %v) = %v, want %v", a, c.b, got, c.same)
		}
	}
	z1 := &net.UDPAddr{IP: net.ParseIP("fe80::1"), Port: 1, Zone: "eth0"}
	z2 := &net.UDPAddr{IP: net.ParseIP("fe80::1"), Port: 1, Zone: "eth1"}
	if sameAddr(z1, z2) {
		t.Error("addresses in different zones are the same")
	}
}
