package edgefn

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"strings"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"go.uber.org/zap"

	"github.com/conductor-edge/conductor/caddymodule/selfrequest"
)

// The host module `conductor`: what a function may do besides computing.
// Each function takes pointers into the function's own memory; nothing
// else crosses.
//
//	fetch(url_ptr, url_len, buf_ptr, buf_cap) -> u64   status<<32 | body length (0: refused)
//	read_data(name_ptr, name_len, buf_ptr, buf_cap) -> i64   length, or -1
//	log(msg_ptr, msg_len)
//
// A length larger than buf_cap means the buffer held only the start: call
// again with room for all of it (edgefn/sdk does).

// call is what a host function knows of the call it serves.
type call struct {
	h     *Handler
	req   *http.Request
	depth int
}

type callKey struct{}

func withCall(ctx context.Context, c *call) context.Context {
	if parent, ok := ctx.Value(callKey{}).(*call); ok {
		c.depth = parent.depth + 1
	}
	return context.WithValue(ctx, callKey{}, c)
}

// maxFetchDepth bounds a function fetching a URL that runs a function that
// fetches …: the chain ends there with a refusal.
const maxFetchDepth = 3

func instantiateHost(ctx context.Context, rt wazero.Runtime) error {
	_, err := rt.NewHostModuleBuilder("conductor").
		NewFunctionBuilder().WithFunc(hostFetch).Export("fetch").
		NewFunctionBuilder().WithFunc(hostReadData).Export("read_data").
		NewFunctionBuilder().WithFunc(hostLog).Export("log").
		Instantiate(ctx)
	return err
}

func hostFetch(ctx context.Context, m api.Module, urlPtr, urlLen, bufPtr, bufCap uint32) uint64 {
	c, _ := ctx.Value(callKey{}).(*call)
	raw, ok := m.Memory().Read(urlPtr, urlLen)
	if c == nil || !ok || c.depth >= maxFetchDepth {
		return 0
	}
	base := &url.URL{Scheme: "http", Host: c.req.Host, Path: c.req.URL.Path}
	u, err := selfrequest.Target(base, string(raw), c.h.FetchAllow)
	if err != nil {
		c.h.m.fetches["refused"].Inc()
		return 0
	}
	fw := &selfrequest.Capture{Limit: c.h.MaxResponse}
	hdr := http.Header{"Accept": {"*/*"}}
	if err := selfrequest.DoAs(ctx, selfrequest.Server(c.req.Context()), c.req.RemoteAddr, u.Host, u.RequestURI(), hdr, fw); err != nil || fw.Over || fw.Status == 0 {
		c.h.m.fetches["failed"].Inc()
		return 0
	}
	c.h.m.fetches["ok"].Inc()
	body := fw.Body.Bytes()
	n := min(uint32(len(body)), bufCap)
	if !m.Memory().Write(bufPtr, body[:n]) {
		return 0
	}
	return uint64(fw.Status)<<32 | uint64(uint32(len(body)))
}

// hostReadData reads a file of the function's data directory, through
// os.Root: no path reaches outside it.
func hostReadData(ctx context.Context, m api.Module, namePtr, nameLen, bufPtr, bufCap uint32) int64 {
	c, _ := ctx.Value(callKey{}).(*call)
	raw, ok := m.Memory().Read(namePtr, nameLen)
	if c == nil || !ok || c.h.Data == "" {
		return -1
	}
	root, err := os.OpenRoot(c.h.Data)
	if err != nil {
		return -1
	}
	defer root.Close()
	f, err := root.Open(strings.TrimPrefix(path.Clean("/"+string(raw)), "/"))
	if err != nil {
		return -1
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, c.h.MaxResponse+1))
	if err != nil || int64(len(b)) > c.h.MaxResponse {
		return -1
	}
	n := min(uint32(len(b)), bufCap)
	if !m.Memory().Write(bufPtr, b[:n]) {
		return -1
	}
	return int64(len(b))
}

func hostLog(ctx context.Context, m api.Module, msgPtr, msgLen uint32) {
	c, _ := ctx.Value(callKey{}).(*call)
	raw, ok := m.Memory().Read(msgPtr, min(msgLen, 4096))
	if c == nil || !ok {
		return
	}
	msg := string(raw)
	c.h.logs.Do(func() {
		c.h.logger.Info("edge function log (at most one line a second)", zap.String("function", c.h.Name), zap.String("msg", msg))
	})
}

// logWriter is a function's stderr: into the log, rate-limited.
type logWriter struct{ h *Handler }

func (l *logWriter) Write(p []byte) (int, error) {
	msg := string(bytes.TrimSpace(p[:min(len(p), 4096)]))
	l.h.logs.Do(func() {
		l.h.logger.Info("edge function stderr (at most one line a second)", zap.String("function", l.h.Name), zap.String("msg", msg))
	})
	return len(p), nil
}
