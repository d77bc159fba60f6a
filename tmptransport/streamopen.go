package tmptransport

import (
	"encoding/binary"
	"net/netip"

	"github.com/quic-go/quic-go/quicvarint"
)

// STREAM_OPEN (SPEC §3): a stream's priority, its flags, and for a service
// stream the service's name and the addresses of the connection it carries.

// Stream open flags.
const (
	openFlagZstd    = 1 << 0 // both directions of the stream are zstd-compressed
	openFlagService = 1 << 1 // a service name follows the flags (SPEC §3)
	openFlagAddrs   = 1 << 2 // the carried connection's addresses follow (SPEC §3)
)

// streamOpenFrame announces a stream and the priority the opener gave it, so
// that the peer's blender sends the answer at the same priority.
type streamOpenFrame struct {
	StreamID uint64
	Priority uint8
	Flags    uint64
	// Service names what the stream carries, when it is not HTTP: the
	// back-end connects it to the service of that name it lists, or
	// refuses it. At most MaxServiceName bytes of [A-Za-z0-9._-].
	Service string
	// Source and Destination are the addresses of the connection a
	// service stream carries (the client's, and the front-end's where it
	// arrived), for a PROXY protocol header at the far end. Both or
	// neither, of one family.
	Source, Destination netip.AddrPort
}

// maxOpenAddrs is what the addresses take at most: family, then two IPv6
// addresses with their ports.
const maxOpenAddrs = 1 + 2*(16+2)

func (f *streamOpenFrame) appendTo(b []byte) []byte {
	b = append(b, frameStreamOpen)
	b = quicvarint.Append(b, f.StreamID)
	b = append(b, f.Priority)
	flags := f.Flags &^ (openFlagService | openFlagAddrs)
	if f.Service != "" {
		flags |= openFlagService
	}
	addrs := f.Source.IsValid() && f.Destination.IsValid()
	if addrs {
		flags |= openFlagAddrs
	}
	b = quicvarint.Append(b, flags)
	if f.Service != "" {
		b = append(b, byte(len(f.Service)))
		b = append(b, f.Service...)
	}
	if addrs {
		src, dst := f.Source.Addr().Unmap(), f.Destination.Addr().Unmap()
		if src.Is4() && dst.Is4() {
			b = append(b, 4)
		} else {
			b = append(b, 6)
			src, dst = netip.AddrFrom16(src.As16()), netip.AddrFrom16(dst.As16())
		}
		b = append(b, src.AsSlice()...)
		b = binary.BigEndian.AppendUint16(b, f.Source.Port())
		b = append(b, dst.AsSlice()...)
		b = binary.BigEndian.AppendUint16(b, f.Destination.Port())
	}
	return b
}

// addrs decodes the addresses of a STREAM_OPEN: a family byte (4 or 6),
// then the source's address and port, then the destination's.
func (p *frameParser) addrs() (src, dst netip.AddrPort) {
	fam := p.bytes(1, "address family")
	if p.err != nil {
		return
	}
	var n uint64
	switch fam[0] {
	case 4:
		n = 4
	case 6:
		n = 16
	default:
		p.err = errorf(FrameEncodingError, "STREAM_OPEN: address family %d (want 4 or 6)", fam[0])
		return
	}
	one := func() netip.AddrPort {
		a := p.bytes(n, "address")
		port := p.bytes(2, "port")
		if p.err != nil {
			return netip.AddrPort{}
		}
		ip, _ := netip.AddrFromSlice(a)
		return netip.AddrPortFrom(ip, binary.BigEndian.Uint16(port))
	}
	src = one()
	dst = one()
	return src, dst
}

// MaxServiceName is the longest service name a stream may carry.
const MaxServiceName = 64

// ValidServiceName reports whether name can name a service: 1 to
// MaxServiceName bytes of [A-Za-z0-9._-].
func ValidServiceName(name string) bool {
	if name == "" || len(name) > MaxServiceName {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
func (*streamOpenFrame) ackEliciting() bool { return true }

// streamOpen decodes a STREAM_OPEN after its type byte.
func (p *frameParser) streamOpen() *streamOpenFrame {
	id := p.varint("stream id")
	var prio uint8
	if p.err == nil {
		if len(p.b) < 1 {
			p.err = errorf(FrameEncodingError, "truncated priority")
		} else {
			prio = p.b[0]
			p.b = p.b[1:]
		}
	}
	of := &streamOpenFrame{StreamID: id, Priority: prio, Flags: p.varint("open flags")}
	if of.Flags&openFlagService != 0 && p.err == nil {
		n := p.bytes(1, "service name length")
		if p.err == nil {
			name := p.bytes(uint64(n[0]), "service name")
			if p.err == nil && !ValidServiceName(string(name)) {
				p.err = errorf(FrameEncodingError, "STREAM_OPEN: service name %q is not 1-64 bytes of [A-Za-z0-9._-]", name)
			}
			of.Service = string(name)
		}
	}
	if of.Flags&openFlagAddrs != 0 && p.err == nil {
		of.Source, of.Destination = p.addrs()
	}
	return of
}
