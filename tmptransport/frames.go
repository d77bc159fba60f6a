package tmptransport

import (
	"time"

	"github.com/quic-go/quic-go/quicvarint"
)

// Frame types. The numbering and the variable-length integer encoding follow
// RFC 9000 §12.4 and §16 where a QUIC frame has the same job; SPEC.md has the
// full table. This file holds every frame's encoding and decoding side by
// side, as the SPEC's table does (STREAM_OPEN, with its service name and
// addresses, is in streamopen.go).
const (
	framePadding       = 0x00
	framePing          = 0x01
	frameAck           = 0x02
	frameResetStream   = 0x03
	frameStopSending   = 0x04
	frameCrypto        = 0x05
	frameStreamOpen    = 0x06
	frameStream        = 0x08 // | streamFlagFin
	frameStreamFin     = 0x09
	frameMaxData       = 0x0a
	frameMaxStreamData = 0x0b
	frameMaxStreams    = 0x0c
	frameLinkQuality   = 0x0d
	frameClose         = 0x0e
	frameHandshakeDone = 0x0f
	framePathChallenge = 0x10
	framePathResponse  = 0x11
	frameStreamMore    = 0x12 // STREAM, with more of the stream queued behind it
)

// Limits that bound what a peer can make us allocate while parsing.
const (
	maxAckRanges     = 256
	maxReasonLength  = 1024
	maxFrameDataSize = 1 << 16
)

// frame is one decoded frame.
type frame interface {
	appendTo(b []byte) []byte
	// ackEliciting reports whether receiving this frame obliges an ACK.
	ackEliciting() bool
}

type pingFrame struct{}

func (pingFrame) appendTo(b []byte) []byte { return append(b, framePing) }
func (pingFrame) ackEliciting() bool       { return true }

type paddingFrame struct{ n int }

func (f paddingFrame) appendTo(b []byte) []byte {
	for i := 0; i < f.n; i++ {
		b = append(b, framePadding)
	}
	return b
}
func (paddingFrame) ackEliciting() bool { return false }

type handshakeDoneFrame struct{}

func (handshakeDoneFrame) appendTo(b []byte) []byte { return append(b, frameHandshakeDone) }
func (handshakeDoneFrame) ackEliciting() bool       { return true }

// ackFrame acknowledges packet numbers. Ranges are sorted from highest to
// lowest and are inclusive: [Smallest, Largest].
type ackFrame struct {
	Ranges []ackRange
	Delay  time.Duration
}

type ackRange struct{ Smallest, Largest uint64 }

func (f *ackFrame) largest() uint64 { return f.Ranges[0].Largest }

func (f *ackFrame) appendTo(b []byte) []byte {
	b = append(b, frameAck)
	b = quicvarint.Append(b, f.Ranges[0].Largest)
	b = quicvarint.Append(b, uint64(f.Delay/time.Microsecond))
	b = quicvarint.Append(b, uint64(len(f.Ranges)-1))
	b = quicvarint.Append(b, f.Ranges[0].Largest-f.Ranges[0].Smallest)
	for i := 1; i < len(f.Ranges); i++ {
		gap := f.Ranges[i-1].Smallest - f.Ranges[i].Largest - 2
		b = quicvarint.Append(b, gap)
		b = quicvarint.Append(b, f.Ranges[i].Largest-f.Ranges[i].Smallest)
	}
	return b
}
func (*ackFrame) ackEliciting() bool { return false }

type resetStreamFrame struct {
	StreamID  uint64
	Code      ErrorCode
	FinalSize uint64
}

func (f *resetStreamFrame) appendTo(b []byte) []byte {
	b = append(b, frameResetStream)
	b = quicvarint.Append(b, f.StreamID)
	b = quicvarint.Append(b, uint64(f.Code))
	return quicvarint.Append(b, f.FinalSize)
}
func (*resetStreamFrame) ackEliciting() bool { return true }

type stopSendingFrame struct {
	StreamID uint64
	Code     ErrorCode
}

func (f *stopSendingFrame) appendTo(b []byte) []byte {
	b = append(b, frameStopSending)
	b = quicvarint.Append(b, f.StreamID)
	return quicvarint.Append(b, uint64(f.Code))
}
func (*stopSendingFrame) ackEliciting() bool { return true }

// cryptoFrame carries TLS handshake bytes (only in handshake packets).
type cryptoFrame struct {
	Offset uint64
	Data   []byte
}

func (f *cryptoFrame) appendTo(b []byte) []byte {
	b = append(b, frameCrypto)
	b = quicvarint.Append(b, f.Offset)
	b = quicvarint.Append(b, uint64(len(f.Data)))
	return append(b, f.Data...)
}
func (*cryptoFrame) ackEliciting() bool { return true }

// streamFrame is one sub-packet of stream data (seed: "Each sub-packet can be
// up to 512 bytes").
type streamFrame struct {
	StreamID uint64
	Offset   uint64
	Data     []byte
	Fin      bool
	// More says the sender had more of the stream queued right behind this
	// frame (STREAM_MORE): the receiver may let the data wait for it before
	// it wakes its reader. Never with Fin.
	More bool
}

func (f *streamFrame) appendTo(b []byte) []byte {
	return append(appendStreamFrameHeader(b, f.StreamID, f.Offset, uint64(len(f.Data)), f.Fin, f.More), f.Data...)
}

// appendStreamFrameHeader writes a STREAM frame's header; n bytes of data
// must follow. fin wins over more: the end of a stream is always delivered.
func appendStreamFrameHeader(b []byte, id, off, n uint64, fin, more bool) []byte {
	t := byte(frameStream)
	switch {
	case fin:
		t = frameStreamFin
	case more:
		t = frameStreamMore
	}
	b = append(b, t)
	b = quicvarint.Append(b, id)
	b = quicvarint.Append(b, off)
	return quicvarint.Append(b, n)
}
func (*streamFrame) ackEliciting() bool { return true }

type maxDataFrame struct{ Max uint64 }

func (f *maxDataFrame) appendTo(b []byte) []byte {
	return quicvarint.Append(append(b, frameMaxData), f.Max)
}
func (*maxDataFrame) ackEliciting() bool { return true }

type maxStreamDataFrame struct {
	StreamID uint64
	Max      uint64
}

func (f *maxStreamDataFrame) appendTo(b []byte) []byte {
	b = append(b, frameMaxStreamData)
	b = quicvarint.Append(b, f.StreamID)
	return quicvarint.Append(b, f.Max)
}
func (*maxStreamDataFrame) ackEliciting() bool { return true }

// maxStreamsFrame raises the cumulative number of streams the peer may open.
type maxStreamsFrame struct{ Max uint64 }

func (f *maxStreamsFrame) appendTo(b []byte) []byte {
	return quicvarint.Append(append(b, frameMaxStreams), f.Max)
}
func (*maxStreamsFrame) ackEliciting() bool { return true }

// linkQualityFrame carries what the sender measured on its receive side over
// the last interval, plus its own sender state. It is how each end learns the
// direction it cannot observe (seed: "each end has a great deal of information
// about the characteristics of the connection in one direction, but not the
// other").
type linkQualityFrame struct {
	Interval        time.Duration
	PacketsReceived uint64
	PacketsLost     uint64
	BytesReceived   uint64
	DelayVariation  time.Duration // RFC 3550 §6.4.1 interarrival jitter
	// Sender state of the reporting end, for the other direction.
	CongestionWindow uint64 // packets
	SmoothedRTT      time.Duration
	SendRate         uint64 // bytes/s over the interval
}

func (f *linkQualityFrame) appendTo(b []byte) []byte {
	b = append(b, frameLinkQuality)
	b = quicvarint.Append(b, uint64(f.Interval/time.Microsecond))
	b = quicvarint.Append(b, f.PacketsReceived)
	b = quicvarint.Append(b, f.PacketsLost)
	b = quicvarint.Append(b, f.BytesReceived)
	b = quicvarint.Append(b, uint64(f.DelayVariation/time.Microsecond))
	b = quicvarint.Append(b, f.CongestionWindow)
	b = quicvarint.Append(b, uint64(f.SmoothedRTT/time.Microsecond))
	return quicvarint.Append(b, f.SendRate)
}
func (*linkQualityFrame) ackEliciting() bool { return false }

type closeFrame struct {
	Code   ErrorCode
	Reason string
}

func (f *closeFrame) appendTo(b []byte) []byte {
	b = append(b, frameClose)
	b = quicvarint.Append(b, uint64(f.Code))
	b = quicvarint.Append(b, uint64(len(f.Reason)))
	return append(b, f.Reason...)
}
func (*closeFrame) ackEliciting() bool { return false }

// frameParser decodes frames from one packet payload. Frames that carry data
// (STREAM, CRYPTO) alias the payload; callers copy what they keep.
type frameParser struct {
	b   []byte
	err error
	// stream, if set, is where STREAM frames are decoded: the session's
	// own, reused for every one, since a packet carries several and the
	// session handles each before it asks for the next (an allocation per
	// frame, before). A frame from next is then valid until the next call.
	stream *streamFrame
	// ackInto, if set, is where ACK frames are decoded, their ranges into
	// its slice's capacity, likewise: a lossy path's ACKs carry many
	// ranges, and each ACK allocated its frame and ranges.
	ackInto *ackFrame
}

func (p *frameParser) varint(field string) uint64 {
	if p.err != nil {
		return 0
	}
	v, n, err := quicvarint.Parse(p.b)
	if err != nil {
		p.err = errorf(FrameEncodingError, "truncated %s", field)
		return 0
	}
	p.b = p.b[n:]
	return v
}

func (p *frameParser) bytes(n uint64, field string) []byte {
	if p.err != nil {
		return nil
	}
	if n > maxFrameDataSize {
		p.err = errorf(FrameEncodingError, "oversized %s: %d bytes", field, n)
		return nil
	}
	if uint64(len(p.b)) < n {
		p.err = errorf(FrameEncodingError, "truncated %s: want %d bytes, have %d", field, n, len(p.b))
		return nil
	}
	d := p.b[:n]
	p.b = p.b[n:]
	return d
}

func (p *frameParser) micros(field string) time.Duration {
	v := p.varint(field)
	if v > uint64(1<<62)/uint64(time.Microsecond) {
		if p.err == nil {
			p.err = errorf(FrameEncodingError, "%s out of range", field)
		}
		return 0
	}
	return time.Duration(v) * time.Microsecond
}

// next decodes the next frame. It returns (nil, nil) at the end of the payload.
func (p *frameParser) next() (frame, error) {
	if p.err != nil {
		return nil, p.err
	}
	if len(p.b) == 0 {
		return nil, nil
	}
	t := p.b[0]
	p.b = p.b[1:]
	var f frame
	switch t {
	case framePadding:
		n := 1
		for len(p.b) > 0 && p.b[0] == framePadding {
			p.b = p.b[1:]
			n++
		}
		f = paddingFrame{n: n}
	case framePing:
		f = pingFrame{}
	case frameHandshakeDone:
		f = handshakeDoneFrame{}
	case frameAck:
		f = p.ack()
	case frameResetStream:
		f = &resetStreamFrame{StreamID: p.varint("stream id"), Code: ErrorCode(p.varint("error code")), FinalSize: p.varint("final size")}
	case frameStopSending:
		f = &stopSendingFrame{StreamID: p.varint("stream id"), Code: ErrorCode(p.varint("error code"))}
	case frameCrypto:
		off := p.varint("crypto offset")
		f = &cryptoFrame{Offset: off, Data: p.bytes(p.varint("crypto length"), "crypto data")}
	case frameStreamOpen:
		f = p.streamOpen()
	case frameStream, frameStreamFin, frameStreamMore:
		id := p.varint("stream id")
		off := p.varint("stream offset")
		data := p.bytes(p.varint("stream length"), "stream data")
		if p.err == nil && off+uint64(len(data)) > 1<<62 {
			p.err = errorf(FrameEncodingError, "stream offset out of range")
		}
		sf := p.stream
		if sf == nil {
			sf = new(streamFrame)
		}
		*sf = streamFrame{StreamID: id, Offset: off, Data: data, Fin: t == frameStreamFin, More: t == frameStreamMore}
		f = sf
	case frameMaxData:
		f = &maxDataFrame{Max: p.varint("max data")}
	case frameMaxStreamData:
		f = &maxStreamDataFrame{StreamID: p.varint("stream id"), Max: p.varint("max stream data")}
	case frameMaxStreams:
		f = &maxStreamsFrame{Max: p.varint("max streams")}
	case frameLinkQuality:
		f = &linkQualityFrame{
			Interval:         p.micros("interval"),
			PacketsReceived:  p.varint("packets received"),
			PacketsLost:      p.varint("packets lost"),
			BytesReceived:    p.varint("bytes received"),
			DelayVariation:   p.micros("delay variation"),
			CongestionWindow: p.varint("congestion window"),
			SmoothedRTT:      p.micros("smoothed rtt"),
			SendRate:         p.varint("send rate"),
		}
	case framePathChallenge, framePathResponse:
		var d [8]byte
		copy(d[:], p.bytes(8, "path data"))
		if t == framePathChallenge {
			f = &pathChallengeFrame{Data: d}
		} else {
			f = &pathResponseFrame{Data: d}
		}
	case frameClose:
		code := ErrorCode(p.varint("error code"))
		n := p.varint("reason length")
		if p.err == nil && n > maxReasonLength {
			p.err = errorf(FrameEncodingError, "close reason too long: %d bytes", n)
		}
		f = &closeFrame{Code: code, Reason: string(p.bytes(n, "close reason"))}
	default:
		p.err = errorf(FrameEncodingError, "unknown frame type 0x%02x", t)
	}
	if p.err != nil {
		return nil, p.err
	}
	return f, nil
}

func (p *frameParser) ack() frame {
	largest := p.varint("largest acknowledged")
	delay := p.micros("ack delay")
	count := p.varint("ack range count")
	first := p.varint("first ack range")
	if p.err != nil {
		return nil
	}
	if count > maxAckRanges {
		p.err = errorf(FrameEncodingError, "too many ack ranges: %d", count)
		return nil
	}
	if first > largest {
		p.err = errorf(FrameEncodingError, "invalid first ack range")
		return nil
	}
	f := p.ackInto
	if f == nil {
		f = &ackFrame{Ranges: make([]ackRange, 0, count+1)}
	}
	f.Delay, f.Ranges = delay, f.Ranges[:0]
	smallest := largest - first
	f.Ranges = append(f.Ranges, ackRange{smallest, largest})
	for i := uint64(0); i < count; i++ {
		gap := p.varint("ack gap")
		n := p.varint("ack range")
		if p.err != nil {
			return nil
		}
		// RFC 9000 §19.3.1: largest = previous smallest - gap - 2.
		if smallest < gap+2 || smallest-gap-2 < n {
			p.err = errorf(FrameEncodingError, "invalid ack range")
			return nil
		}
		l := smallest - gap - 2
		smallest = l - n
		f.Ranges = append(f.Ranges, ackRange{smallest, l})
	}
	return f
}
