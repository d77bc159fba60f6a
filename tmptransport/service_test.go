package tmptransport

import (
	"context"
	"net/netip"
	"testing"
	"time"
)

// A stream can name the service it carries; the peer reads the name when
// it accepts the stream, and a stream that names none is HTTP's. A name
// outside the rules is refused before anything is sent.
func TestStreamCarriesItsServiceName(t *testing.T) {
	pki := getPKI(t)
	_, c, s := pair(t, pki.serverConfig(), pki.clientConfig())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, name := range []string{"redis", ""} {
		st, err := c.OpenStreamOptions(ctx, OpenStreamOptions{Priority: 3, Service: name})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		got, err := s.AcceptStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got.Service() != name || got.Priority() != 3 {
			t.Fatalf("accepted service %q priority %d, want %q 3", got.Service(), got.Priority(), name)
		}
	}
	if _, err := c.OpenStreamOptions(ctx, OpenStreamOptions{Service: "../etc"}); err == nil {
		t.Fatal("a stream opened with service name ../etc")
	}
}

// A service stream can carry the addresses of the connection it carries;
// the peer reads them when it accepts it. A stream opened without them,
// or with only one, has none.
func TestStreamCarriesItsConnectionsAddresses(t *testing.T) {
	pki := getPKI(t)
	_, c, s := pair(t, pki.serverConfig(), pki.clientConfig())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	src, dst := netip.MustParseAddrPort("198.51.100.7:40123"), netip.MustParseAddrPort("203.0.113.1:25")
	for _, o := range []OpenStreamOptions{
		{Service: "smtp", Source: src, Destination: dst},
		{Service: "smtp", Source: src},
		{Service: "smtp"},
	} {
		st, err := c.OpenStreamOptions(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		st.Write([]byte("x"))
		got, err := s.AcceptStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		gs, gd := got.ConnAddrs()
		wantSrc, wantDst := o.Source, o.Destination
		if !o.Destination.IsValid() {
			wantSrc, wantDst = netip.AddrPort{}, netip.AddrPort{}
		}
		if gs != wantSrc || gd != wantDst {
			t.Fatalf("opened with %v → %v, accepted %v → %v", o.Source, o.Destination, gs, gd)
		}
	}
}
