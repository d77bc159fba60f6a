package tmptransport

import (
	"errors"
	"fmt"
	"net"
)

// ErrorCode is a session or stream error code carried in CLOSE and RESET_STREAM
// frames. Codes below 0x100 are TMP's own (see SPEC.md); applications may use
// any other value.
type ErrorCode uint64

// Transport error codes, modelled on RFC 9000 §20.1.
const (
	NoError            ErrorCode = 0x0
	InternalError      ErrorCode = 0x1
	ProtocolViolation  ErrorCode = 0x2
	FlowControlError   ErrorCode = 0x3
	StreamLimitError   ErrorCode = 0x4
	FrameEncodingError ErrorCode = 0x5
	HandshakeFailure   ErrorCode = 0x6
	IdleTimeout        ErrorCode = 0x7
	StreamRefused      ErrorCode = 0x8
	StreamCancelled    ErrorCode = 0x9
	TransportParamErr  ErrorCode = 0xa
	AEADLimitReached   ErrorCode = 0xb
)

var codeNames = map[ErrorCode]string{
	NoError:            "no error",
	InternalError:      "internal error",
	ProtocolViolation:  "protocol violation",
	FlowControlError:   "flow control error",
	StreamLimitError:   "stream limit exceeded",
	FrameEncodingError: "frame encoding error",
	HandshakeFailure:   "handshake failure",
	IdleTimeout:        "idle timeout",
	StreamRefused:      "stream refused",
	StreamCancelled:    "stream cancelled",
	TransportParamErr:  "transport parameter error",
	AEADLimitReached:   "AEAD limit reached",
}

func (c ErrorCode) String() string {
	if n, ok := codeNames[c]; ok {
		return n
	}
	return fmt.Sprintf("application error 0x%x", uint64(c))
}

// SessionError reports why a session ended. Remote is true when the peer closed
// it (CLOSE frame or stateless reset).
type SessionError struct {
	Code   ErrorCode
	Reason string
	Remote bool
}

func (e *SessionError) Error() string {
	who := "local"
	if e.Remote {
		who = "remote"
	}
	if e.Reason == "" {
		return fmt.Sprintf("tmp: session closed (%s): %s", who, e.Code)
	}
	return fmt.Sprintf("tmp: session closed (%s): %s: %s", who, e.Code, e.Reason)
}

// StreamError reports that a stream was reset, by us or the peer.
type StreamError struct {
	StreamID uint64
	Code     ErrorCode
	Remote   bool
}

func (e *StreamError) Error() string {
	who := "locally"
	if e.Remote {
		who = "by peer"
	}
	return fmt.Sprintf("tmp: stream %d reset %s: %s", e.StreamID, who, e.Code)
}

// Errors returned by the API.
var (
	// ErrStatelessReset means the peer no longer knows this session, typically
	// because it restarted. The session is dead; dial again.
	ErrStatelessReset = errors.New("tmp: session reset by peer (stateless reset)")
	// ErrPeerUnreachable means the peer's host answered with ICMP port
	// unreachable and nothing came back from the peer since: it is not
	// running there.
	ErrPeerUnreachable = errors.New("tmp: peer unreachable (ICMP port unreachable)")
	// ErrHandshakeTimeout means no handshake completed within Config.HandshakeTimeout.
	ErrHandshakeTimeout = errors.New("tmp: handshake timeout")
	// ErrListenerClosed is returned by Accept after Close.
	ErrListenerClosed = errors.New("tmp: listener closed")
	// ErrSessionClosing is returned by OpenStream while a session drains.
	ErrSessionClosing = errors.New("tmp: session is closing")
	// ErrWriteClosed is returned by Write after CloseWrite or Close.
	ErrWriteClosed = errors.New("tmp: write on closed stream")
	// ErrInvalidPriority is returned for a priority outside 0..NumPriorities-1.
	ErrInvalidPriority = errors.New("tmp: invalid priority")
)

// errListenerClosing ends the sessions of a listener that closes.
var errListenerClosing = &SessionError{Code: NoError, Reason: "endpoint closed"}

// timeoutError is returned when a deadline passes; it satisfies net.Error.
type timeoutError struct{}

func (timeoutError) Error() string   { return "tmp: i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

var errDeadline net.Error = timeoutError{}

// protoError is a connection-level error detected while processing input; it
// closes the session with its code and message.
type protoError struct {
	code ErrorCode
	msg  string
}

func (e *protoError) Error() string { return fmt.Sprintf("tmp: %s: %s", e.code, e.msg) }

func errorf(code ErrorCode, format string, args ...any) error {
	return &protoError{code: code, msg: fmt.Sprintf(format, args...)}
}
