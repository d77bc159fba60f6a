package tmptransport

import "encoding/binary"

// Skipping zstd for data that does not compress (issue 20). A compressed
// stream (STREAM_OPEN flag 0x1) ran every Write through the encoder, which
// at its fastest level still searches random bytes at about 3.3 GB/s on
// this machine: 0.3 CPU s per GB, as much as the AEAD, for a JPEG or a
// gzip'd body that comes out no smaller. So when a Write of at least
// zstdProbeMin bytes comes out of the encoder with less than 1/zstdGainDiv
// saved, the encoder's frame is ended and the stream's next bytes (skip,
// from zstdSkipMin doubling to zstdSkipMax while the data stays
// incompressible) go as zstd frames of raw blocks (RFC 8878 §3.1.1.2.2):
// a copy, and 12 bytes a frame. Then the encoder tries again on a new
// frame, so that a kept stream whose next answer is text compresses it: at
// most zstdSkipMax bytes of it go raw, and an incompressible stream pays
// the encoder for one Write in each zstdSkipMax.
// The peer's decoder reads consecutive frames as one stream (RFC 8878
// §3.1); nothing on the wire changes but the blocks' type.
//
// klauspost/compress has no "store" level to ask for raw blocks, so the
// frames are written here; they are four fixed fields.

const (
	zstdProbeMin = 4 << 10
	zstdGainDiv  = 32 // under 1/32 (3 %) saved: incompressible
	zstdSkipMin  = 256 << 10
	zstdSkipMax  = 1 << 20
	// zstdRawFrameMax is a raw frame's content: a block's maximum (RFC
	// 8878 §3.1.1.2.3), below the decoder's 1 MiB window limit.
	zstdRawFrameMax = 128 << 10
)

// zstdRawFrameHeader is the header of a single-segment frame of n bytes
// (n ≤ zstdRawFrameMax) followed by its one raw block: magic number, frame
// header descriptor (Single_Segment, a 4-byte Frame_Content_Size), the
// content size, and the block header (Last_Block, Raw_Block, size).
func zstdRawFrameHeader(n int) [12]byte {
	var h [12]byte
	binary.LittleEndian.PutUint32(h[0:], 0xFD2FB528)
	h[4] = 2<<6 | 1<<5
	binary.LittleEndian.PutUint32(h[5:], uint32(n))
	b := uint32(n)<<3 | 0<<1 | 1 // size, Raw_Block, Last_Block
	h[9], h[10], h[11] = byte(b), byte(b>>8), byte(b>>16)
	return h
}

// zstdSkip is a compressed stream's writer state: how many more bytes go
// raw, how many the next skip lasts, and whether the encoder has a frame
// open. Guarded by the stream's zwmu.
type zstdSkip struct {
	left, next int
	frameOpen  bool
	wrote      bool  // anything went out: the stream needs no empty frame
	out        int64 // bytes the encoder wrote, to weigh each Write

	// Compressed bytes a Write could not send before its deadline: they go
	// out before anything else (zstdwrite.go). stalled: the deadline
	// passed during the current Write.
	pending []byte
	stalled bool
}

// writeRawFramesZWLocked writes p as raw zstd frames.
func (s *Stream) writeRawFramesZWLocked(p []byte) (int, error) {
	written := 0
	for len(p) > 0 && !s.zs.stalled {
		n := min(len(p), zstdRawFrameMax)
		h := zstdRawFrameHeader(n)
		// A frame goes whole, now or from pending: cut short, the next
		// bytes would be read as its rest.
		if err := s.zstdOutZWLocked(h[:]); err != nil {
			return written, err
		}
		if err := s.zstdOutZWLocked(p[:n]); err != nil {
			return written, err
		}
		written += n
		p = p[n:]
	}
	s.zs.wrote = true
	return written, nil
}

// weighWriteZWLocked decides, after the encoder took a Write of in bytes,
// whether the stream's data is incompressible, and if so ends the frame
// and skips the encoder for the next bytes.
func (s *Stream) weighWriteZWLocked(in int, out int64) error {
	if in < zstdProbeMin {
		return nil
	}
	if out < int64(in)-int64(in/zstdGainDiv) {
		s.zs.next = 0 // it compresses: the next skip starts short again
		return nil
	}
	s.zs.left = max(s.zs.next, zstdSkipMin)
	s.zs.next = min(2*s.zs.left, zstdSkipMax)
	s.zs.frameOpen = false
	err := s.zw.Close()
	s.zw.Reset(zstdSink{s})
	return err
}
