package tmptransport

import "time"

// rttStats estimates round-trip time as RFC 9002 §5 describes: a smoothed
// RTT and its variation (exponentially weighted, 1/8 and 1/4), the minimum
// over the session, and the latest sample.
type rttStats struct {
	latest, smoothed, variance, minRTT time.Duration
	hasSample                          bool
	maxAckDelay                        time.Duration
}

const initialRTT = 100 * time.Millisecond

func (r *rttStats) update(sample, ackDelay time.Duration) {
	if sample <= 0 {
		sample = time.Microsecond
	}
	r.latest = sample
	if !r.hasSample {
		r.hasSample = true
		r.minRTT, r.smoothed, r.variance = sample, sample, sample/2
		return
	}
	if sample < r.minRTT {
		r.minRTT = sample
	}
	// RFC 9002 §5.3: subtract the peer's ack delay unless it would take the
	// sample below the minimum.
	ackDelay = min(ackDelay, r.maxAckDelay)
	adjusted := sample
	if sample-ackDelay >= r.minRTT {
		adjusted = sample - ackDelay
	}
	d := r.smoothed - adjusted
	if d < 0 {
		d = -d
	}
	r.variance = (3*r.variance + d) / 4
	r.smoothed = (7*r.smoothed + adjusted) / 8
}

func (r *rttStats) srtt() time.Duration {
	if !r.hasSample {
		return initialRTT
	}
	return r.smoothed
}

// pto is the probe timeout of RFC 9002 §6.2.1.
func (r *rttStats) pto() time.Duration {
	if !r.hasSample {
		return 2 * initialRTT
	}
	return r.smoothed + max(4*r.variance, time.Millisecond) + r.maxAckDelay
}
