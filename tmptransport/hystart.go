package tmptransport

import "time"

// hystart is HyStart++ (RFC 9406): slow start ends when the round trip
// starts to grow, before the bottleneck queue overflows, instead of at the
// first loss. Doubling until a loss overshoots the path by up to a whole
// window: on a 40 ms, 200 Mbit/s path with a BDP-sized queue that is over a
// thousand packets dropped in one round trip, each of which is sent again.
// After the delay rises, Conservative Slow Start grows at a quarter of the
// slow-start rate for a few rounds, in case the rise was noise, then hands
// over to congestion avoidance.
type hystart struct {
	lastRoundMin, roundMin time.Duration
	samples                int
	css                    bool
	cssBaseline            time.Duration
	cssRounds              int
}

type hystartPhase int

const (
	hystartSlowStart hystartPhase = iota
	hystartConservative
	hystartDone
)

// RFC 9406 §4.3 constants.
const (
	hystartMinRTTThresh = 4 * time.Millisecond
	hystartMaxRTTThresh = 16 * time.Millisecond
	hystartMinRTTDiv    = 8
	hystartSamples      = 8
	cssGrowthDivisor    = 4
	cssRounds           = 5
)

// onAck takes one acknowledgment during slow start and returns how the
// window grows for it. newRound says the acknowledgment opens a new round
// (it acknowledges a packet sent after the previous round began).
func (h *hystart) onAck(newRound bool, rtt *RTTSnapshot) hystartPhase {
	if newRound {
		h.lastRoundMin, h.roundMin, h.samples = h.roundMin, 0, 0
		if h.css {
			h.cssRounds++
			if h.cssRounds >= cssRounds {
				*h = hystart{}
				return hystartDone
			}
		}
	}
	if rtt == nil || rtt.Latest <= 0 {
		if h.css {
			return hystartConservative
		}
		return hystartSlowStart
	}
	if h.roundMin == 0 || rtt.Latest < h.roundMin {
		h.roundMin = rtt.Latest
	}
	h.samples++
	if h.css {
		// The rise was spurious: the round's minimum fell back below the
		// baseline, so slow start resumes (§4.2).
		if h.samples >= hystartSamples && h.roundMin < h.cssBaseline {
			h.css, h.cssRounds = false, 0
			return hystartSlowStart
		}
		return hystartConservative
	}
	if h.samples >= hystartSamples && h.lastRoundMin > 0 {
		eta := min(max(h.lastRoundMin/hystartMinRTTDiv, hystartMinRTTThresh), hystartMaxRTTThresh)
		if h.roundMin >= h.lastRoundMin+eta {
			h.css, h.cssBaseline, h.cssRounds = true, h.roundMin, 0
			return hystartConservative
		}
	}
	return hystartSlowStart
}
