package tmptransport

import (
	"bytes"
	"net"
	"testing"
	"time"
)

// The CPU a listener spends on CRYPTO data before a handshake completes
// does not depend on how the attacker cuts it up. Initials packed with
// 1-byte CRYPTO fragments at even offsets (never offset 0, so TLS never
// sees a byte), 8 sessions × 4 passes over the 64 KiB a level may hold, cost
// at most 2× the CPU of the same bytes sent contiguously in as many packets.
// Before the reassembly was capped, the fragments cost 24.9 CPU-seconds
// against 0.04 (an O(n) insert and an O(n) total per frame, no gap cap).
func TestInitialCryptoFragmentationBudget(t *testing.T) {
	p := getPKI(t)
	l, err := Listen("127.0.0.1:0", p.serverConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	attacker, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer attacker.Close()

	const sessions, passes = 8, 4
	perPass := 0 // packets per pass over the level's 64 KiB, in 1-byte fragments
	{
		var pn uint64
		pkts, _ := fragmentedInitials(sessionID{}, &pn, 2, 1)
		perPass = (maxCryptoBuffer/2 + bytes.Count(pkts[0], []byte{0x16}) - 1) / bytes.Count(pkts[0], []byte{0x16})
	}
	fragsPerPacket := (maxCryptoBuffer / 2) / perPass

	run := func(name string, build func(id sessionID, pn *uint64) [][]byte) time.Duration {
		var pkts [][]byte
		for range sessions {
			id := newSessionID()
			var pn uint64
			for range passes {
				pkts = append(pkts, build(id, &pn)...)
			}
		}
		before := cpuTime(t)
		for i, pkt := range pkts {
			attacker.WriteTo(pkt, l.Addr())
			if i%64 == 63 {
				time.Sleep(time.Millisecond) // stay under the socket buffer
			}
		}
		time.Sleep(300 * time.Millisecond) // the listener drains its queue
		used := cpuTime(t) - before - 0
		t.Logf("%s: %d packets cost %v of CPU", name, len(pkts), used)
		return used
	}
	frag := run("fragmented", func(id sessionID, pn *uint64) [][]byte {
		pkts, _ := fragmentedInitials(id, pn, 2, perPass)
		return pkts
	})
	cont := run("contiguous", func(id sessionID, pn *uint64) [][]byte {
		pkts, _ := contiguousInitials(id, pn, 1, fragsPerPacket, perPass)
		return pkts
	})
	// Both runs include the same sleeps, during which an idle process
	// uses next to nothing; the floor keeps a quiet machine's noise from
	// deciding the ratio.
	floor := 20 * time.Millisecond
	if frag > 2*max(cont, floor) {
		t.Fatalf("fragmented CRYPTO cost %v of CPU, contiguous %v: more than 2×", frag, cont)
	}
	if st := l.Stats(); st.Refused[RefusedCryptoLimit] == 0 {
		t.Fatalf("no session was refused for its fragments: %+v", st)
	}
}

// FuzzCryptoReassembly feeds one level's reassembly arbitrary (offset, data)
// pieces. It must never panic, never hold more than maxCryptoRanges ranges
// or maxCryptoBuffer bytes, and whatever it delivers must be exactly the
// bytes that were written at those offsets.
func FuzzCryptoReassembly(f *testing.F) {
	f.Add([]byte{0, 4, 'a', 'b', 'c', 'd'})
	f.Add([]byte{2, 1, 'x', 0, 2, 'a', 'b', 1, 1, 'q'})
	var frag []byte
	for off := 2; off < 80; off += 2 {
		frag = append(frag, byte(off), 1, 0x16)
	}
	f.Add(frag)
	f.Add([]byte{255, 255, 'z'})
	f.Fuzz(func(t *testing.T, in []byte) {
		var c cryptoStream
		want := make(map[uint64]byte)
		var delivered []byte
		for len(in) >= 2 {
			// Offsets scaled so that the fuzzer reaches the buffer cap.
			off := uint64(in[0]) * 257
			n := int(in[1]) % 32
			in = in[2:]
			if n > len(in) {
				n = len(in)
			}
			data := in[:n]
			in = in[n:]
			_, err := c.insert(off, data)
			if err != nil {
				if err != error(errCryptoBuffer) && err != error(errCryptoRanges) {
					t.Fatalf("unexpected error %v", err)
				}
				return // the session would be dropped here
			}
			for i, b := range data {
				if _, ok := want[off+uint64(i)]; !ok {
					want[off+uint64(i)] = b
				}
			}
			if len(c.have.r) > maxCryptoRanges || len(c.buf) > maxCryptoBuffer {
				t.Fatalf("%d ranges, %d bytes buffered", len(c.have.r), len(c.buf))
			}
			delivered = append(delivered, c.contiguous()...)
		}
		for i, b := range delivered {
			if w, ok := want[uint64(i)]; !ok || w != b {
				t.Fatalf("delivered byte %d is %#x, want %#x (written: %v)", i, b, w, ok)
			}
		}
	})
}
