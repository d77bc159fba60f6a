package tmptransport

import (
	"context"
	"crypto/tls"
	"io"
	"strconv"
	"sync"
	"testing"

	"github.com/quic-go/quic-go"
)

// Loopback throughput of TMP next to quic-go v0.65, in the same run: one
// stream, and 100 streams in parallel. Each iteration moves 1 MiB from the
// client to a server that discards it; the figure is the client's send
// rate until the server has read everything.
//
//	go test -run '^$' -bench Throughput -benchtime 200x ./tmptransport/
//
// The WAN comparison (HTTP/2, HTTP/3, emulated loss and delay) lives in
// bench/, not here.

const benchChunk = 1 << 20

// benchPeer is one transport under test: open returns a stream-opening
// function on a fresh connection, and a cleanup.
type benchPeer struct {
	name string
	open func(b *testing.B) (func() (io.WriteCloser, error), func())
}

func benchPeers() []benchPeer {
	return []benchPeer{
		{"tmp", openTMP},
		{"quic-go", openQUIC},
	}
}

func openTMP(b *testing.B) (func() (io.WriteCloser, error), func()) {
	p := getPKI(b)
	sc := p.serverConfig()
	sc.MaxIncomingStreams = 1 << 16
	l, err := Listen("127.0.0.1:0", sc)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c, err := Dial(ctx, l.Addr().String(), p.clientConfig())
	if err != nil {
		b.Fatal(err)
	}
	s, err := l.Accept(ctx)
	if err != nil {
		b.Fatal(err)
	}
	go func() {
		for {
			st, err := s.AcceptStream(ctx)
			if err != nil {
				return
			}
			go sink(st)
		}
	}()
	return func() (io.WriteCloser, error) {
			st, err := c.OpenStream(ctx, 2)
			return &tmpCloser{st}, err
		}, func() {
			cancel()
			c.CloseWithError(NoError, "")
			l.Close()
		}
}

// tmpCloser waits for the server's one-byte "done" after the FIN.
type tmpCloser struct{ *Stream }

func (t *tmpCloser) Close() error {
	t.CloseWrite()
	_, err := io.ReadFull(t.Stream, make([]byte, 1))
	t.Stream.Close()
	return err
}

func openQUIC(b *testing.B) (func() (io.WriteCloser, error), func()) {
	p := getPKI(b)
	stls := &tls.Config{Certificates: []tls.Certificate{p.server}, ClientCAs: p.pool, ClientAuth: tls.RequireAndVerifyClientCert, NextProtos: []string{"bench"}}
	ctls := &tls.Config{Certificates: []tls.Certificate{p.client}, RootCAs: p.pool, ServerName: "backend.test", NextProtos: []string{"bench"}}
	qc := &quic.Config{MaxIncomingStreams: 1 << 16}
	l, err := quic.ListenAddr("127.0.0.1:0", stls, qc)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		conn, err := l.Accept(ctx)
		if err != nil {
			return
		}
		for {
			st, err := conn.AcceptStream(ctx)
			if err != nil {
				return
			}
			go sink(st)
		}
	}()
	c, err := quic.DialAddr(ctx, l.Addr().String(), ctls, qc)
	if err != nil {
		b.Fatal(err)
	}
	return func() (io.WriteCloser, error) {
			st, err := c.OpenStreamSync(ctx)
			return &quicCloser{st}, err
		}, func() {
			cancel()
			c.CloseWithError(0, "")
			l.Close()
			wg.Wait()
		}
}

type quicCloser struct{ *quic.Stream }

func (q *quicCloser) Close() error {
	q.Stream.Close() // FIN
	_, err := io.ReadFull(q.Stream, make([]byte, 1))
	return err
}

// sink reads a stream to EOF and answers one byte.
func sink(rw io.ReadWriteCloser) {
	io.Copy(io.Discard, rw)
	rw.Write([]byte{1})
	rw.Close()
}

func BenchmarkThroughput(b *testing.B) {
	chunk := make([]byte, benchChunk)
	for _, peer := range benchPeers() {
		for _, streams := range []int{1, 100} {
			b.Run(peer.name+"/streams="+itoa(streams), func(b *testing.B) {
				open, cleanup := peer.open(b)
				defer cleanup()
				b.SetBytes(benchChunk)
				b.ResetTimer()
				var wg sync.WaitGroup
				per := b.N / streams
				rest := b.N % streams
				for i := 0; i < streams; i++ {
					n := per
					if i < rest {
						n++
					}
					if n == 0 {
						continue
					}
					wg.Add(1)
					go func(n int) {
						defer wg.Done()
						w, err := open()
						if err != nil {
							b.Error(err)
							return
						}
						for j := 0; j < n; j++ {
							if _, err := w.Write(chunk); err != nil {
								b.Error(err)
								return
							}
						}
						if err := w.Close(); err != nil {
							b.Error(err)
						}
					}(n)
				}
				wg.Wait()
			})
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
