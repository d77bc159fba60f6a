package edgefn

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"time"

	"github.com/tetratelabs/wazero/sys"
)

// serve runs one call. It returns the status to answer with and an error
// when the call failed, and the outcome for the metric in any case.
func (h *Handler) serve(w http.ResponseWriter, r *http.Request) (int, string, error) {
	if r.ContentLength > h.MaxRequestBody {
		return http.StatusRequestEntityTooLarge, "limit", fmt.Errorf("request body of %d bytes exceeds max_request_body", r.ContentLength)
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, h.MaxRequestBody+1))
	if err != nil {
		return http.StatusBadRequest, "limit", err
	}
	if int64(len(body)) > h.MaxRequestBody {
		return http.StatusRequestEntityTooLarge, "limit", errors.New("request body exceeds max_request_body")
	}
	ctx, cancel := context.WithTimeout(r.Context(), time.Duration(h.Timeout))
	defer cancel()
	p := h.acquirePool()
	if p == nil {
		return http.StatusServiceUnavailable, "busy", errors.New("the function is closed")
	}
	defer p.release()
	inst, err := p.get(ctx)
	if err != nil {
		return http.StatusServiceUnavailable, "busy", err
	}
	inst.io.reset(requestBytes(r, body), h.MaxResponse)
	_, err = inst.entry.Call(withCall(ctx, &call{h: h, req: r}))
	healthy := err == nil
	var exit *sys.ExitError
	if errors.As(err, &exit) && exit.ExitCode() == 0 && !p.reactor {
		err = nil // a command module's normal end
	}
	out, over := inst.io.out.Bytes(), inst.io.over
	if err == nil {
		out = bytes.Clone(out) // the instance's buffer goes back to the pool
	}
	p.put(inst, healthy && !over)
	switch {
	case over:
		return http.StatusBadGateway, "limit", errResponseTooLarge
	case err != nil && ctx.Err() != nil:
		h.m.timeouts.Inc()
		return http.StatusGatewayTimeout, "timeout", fmt.Errorf("stopped at its %v deadline: %w", time.Duration(h.Timeout), err)
	case err != nil:
		h.m.traps.Inc()
		return http.StatusBadGateway, "trap", err
	}
	if err := writeCGI(w, out); err != nil {
		return http.StatusBadGateway, "bad_response", err
	}
	return http.StatusOK, "ok", nil
}

// requestBytes is the request as the function reads it on stdin: HTTP/1.1,
// with the client's header (hop-by-hop fields removed) and the body.
func requestBytes(r *http.Request, body []byte) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\n", r.Method, r.URL.RequestURI(), r.Host)
	h := r.Header.Clone()
	for _, k := range []string{"Connection", "Keep-Alive", "Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade", "Content-Length", "Host"} {
		h.Del(k)
	}
	h.Write(&b)
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n", len(body))
	b.Write(body)
	return b.Bytes()
}

// writeCGI answers from the function's stdout: header lines, an optional
// `Status: 404 Not Found` (RFC 3875 §6.3.3), a blank line, the body. A
// Location without a Status is a 302, as in CGI.
func writeCGI(w http.ResponseWriter, out []byte) error {
	br := bufio.NewReader(bytes.NewReader(out))
	mh, err := textproto.NewReader(br).ReadMIMEHeader()
	if err != nil && !(errors.Is(err, io.EOF) && len(mh) > 0) {
		return fmt.Errorf("the function's response header: %w", err)
	}
	status := http.StatusOK
	if s := mh.Get("Status"); s != "" {
		code, _, _ := strings.Cut(s, " ")
		if status, err = strconv.Atoi(code); err != nil || status < 100 || status > 999 {
			return fmt.Errorf("the function's Status %q", s)
		}
		mh.Del("Status")
	} else if mh.Get("Location") != "" {
		status = http.StatusFound
	}
	hdr := w.Header()
	for k, v := range mh {
		hdr[k] = v
	}
	rest, _ := io.ReadAll(br)
	hdr.Set("Content-Length", strconv.Itoa(len(rest)))
	w.WriteHeader(status)
	_, err = w.Write(rest)
	return err
}
