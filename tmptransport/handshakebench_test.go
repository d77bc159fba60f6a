package tmptransport

import (
	"context"
	"crypto/tls"
	"net"
	"testing"

	"github.com/quic-go/quic-go"
)

// Handshakes per second on loopback, TMP next to quic-go in the same run,
// each with and without address validation (a Retry round trip before the
// TLS handshake). Each iteration dials a new session from a new socket,
// waits for the handshake to complete on both ends, and closes it; both
// use ECDSA P-256 certificates and mutual authentication.
//
//	go test -run '^$' -bench Handshakes -benchtime 2000x ./tmptransport/
func BenchmarkHandshakes(b *testing.B) {
	for _, retry := range []bool{false, true} {
		suffix := ""
		if retry {
			suffix = "-retry"
		}
		b.Run("tmp"+suffix, func(b *testing.B) { benchTMPHandshakes(b, retry) })
		b.Run("quic-go"+suffix, func(b *testing.B) { benchQUICHandshakes(b, retry) })
	}
}

func benchTMPHandshakes(b *testing.B, retry bool) {
	p := getPKI(b)
	sc := p.serverConfig()
	if retry {
		sc.RetryThreshold = -1
	}
	l, err := Listen("127.0.0.1:0", sc)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	accepted := make(chan *Session, 16)
	go func() {
		for {
			s, err := l.Accept(ctx)
			if err != nil {
				close(accepted)
				return
			}
			accepted <- s
		}
	}()
	cc := p.clientConfig()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c, err := Dial(ctx, l.Addr().String(), cc)
		if err != nil {
			b.Fatal(err)
		}
		s := <-accepted
		c.CloseWithError(NoError, "")
		s.CloseWithError(NoError, "")
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "handshakes/s")
	if retry && l.Stats().RetriesSent < uint64(b.N) {
		b.Fatalf("%d Retries for %d handshakes", l.Stats().RetriesSent, b.N)
	}
}

func benchQUICHandshakes(b *testing.B, retry bool) {
	p := getPKI(b)
	stls := &tls.Config{Certificates: []tls.Certificate{p.server}, ClientCAs: p.pool, ClientAuth: tls.RequireAndVerifyClientCert, NextProtos: []string{"bench"}}
	ctls := &tls.Config{Certificates: []tls.Certificate{p.client}, RootCAs: p.pool, ServerName: "backend.test", NextProtos: []string{"bench"}}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	tr := &quic.Transport{Conn: pc}
	if retry {
		tr.VerifySourceAddress = func(net.Addr) bool { return true }
	}
	defer tr.Close()
	l, err := tr.Listen(stls, &quic.Config{})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	accepted := make(chan *quic.Conn, 16)
	go func() {
		for {
			c, err := l.Accept(ctx)
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c, err := quic.DialAddr(ctx, pc.LocalAddr().String(), ctls, &quic.Config{})
		if err != nil {
			b.Fatal(err)
		}
		s := <-accepted
		<-s.HandshakeComplete()
		c.CloseWithError(0, "")
		s.CloseWithError(0, "")
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "handshakes/s")
}
