package tmptransport

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"
)

func TestEchoOneStream(t *testing.T) {
	p := getPKI(t)
	_, c, s := pair(t, p.serverConfig(), p.clientConfig())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go echoServer(ctx, s)
	st, err := c.OpenStream(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	msg := bytes.Repeat([]byte("conductor "), 10000)
	go func() {
		st.Write(msg)
		st.CloseWrite()
	}()
	got, err := io.ReadAll(st)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("echo mismatch: got %d bytes, want %d", len(got), len(msg))
	}
	st.Close()
	_ = time.Second
}
