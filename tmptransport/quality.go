package tmptransport

import (
	"math"
	"time"
)

// linkQuality is the session's side of the link-quality exchange
// (SPEC §8): our meter of what arrives, the peer's last report of what
// reached it, and when ours is due. Guarded by the session lock.
type linkQuality struct {
	mine     qualityMeter
	peer     linkQualityFrame // the peer's last report: our outbound direction
	peerAt   time.Time
	peerRecv uint64 // totals of the peer's reports
	peerLost uint64
	next     time.Time // our next report
	queued   bool      // our report waits to be sent
}

// onPeerReport takes the peer's report.
func (l *linkQuality) onPeerReport(f *linkQualityFrame, now time.Time) {
	l.peer = *f
	l.peerAt = now
	l.peerRecv += f.PacketsReceived
	l.peerLost += f.PacketsLost
}

// qualityMeter measures the receive side of a session over fixed intervals:
// packets received and missing (gaps in packet numbers), bytes and rate, and
// delay variation. Each interval's result goes to the peer in a LINK_QUALITY
// frame, which is how each end learns what the other sees of the link.
//
// Delay variation is RFC 3550 §6.4.1's interarrival jitter, J += (|D|-J)/16,
// where D compares the spacing of arrivals with the spacing of the sender's
// timestamps (the short header carries the send time in µs).
type qualityMeter struct {
	start            time.Time
	pkts, bytes      uint64
	firstPN, lastPN  uint64
	havePN           bool
	jitter           float64 // µs
	lastArrival      time.Time
	lastSendTS       uint32
	haveLast         bool
	sentBytesInIntvl uint64

	last linkQualityFrame // the last completed interval (our inbound view)
	// Totals over all completed intervals.
	totalReceived, totalLost uint64
}

func (q *qualityMeter) onPacket(now time.Time, pn uint64, size int, sendTS uint32, hasTS bool) {
	q.pkts++
	q.bytes += uint64(size)
	if !q.havePN {
		q.firstPN, q.lastPN, q.havePN = pn, pn, true
	} else {
		q.firstPN = min(q.firstPN, pn)
		q.lastPN = max(q.lastPN, pn)
	}
	if !hasTS {
		return
	}
	if q.haveLast {
		arr := float64(now.Sub(q.lastArrival).Microseconds())
		snd := float64(int32(sendTS - q.lastSendTS)) // wraps safely
		d := math.Abs(arr - snd)
		q.jitter += (d - q.jitter) / 16
	}
	q.lastArrival, q.lastSendTS, q.haveLast = now, sendTS, true
}

// report closes the interval and returns the frame to send.
func (q *qualityMeter) report(now time.Time, cwnd int, srtt time.Duration) *linkQualityFrame {
	iv := now.Sub(q.start)
	if iv <= 0 {
		iv = time.Millisecond
	}
	var lost uint64
	if q.havePN {
		if span := q.lastPN - q.firstPN + 1; span > q.pkts {
			lost = span - q.pkts
		}
	}
	f := &linkQualityFrame{
		Interval:         iv,
		PacketsReceived:  q.pkts,
		PacketsLost:      lost,
		BytesReceived:    q.bytes,
		DelayVariation:   time.Duration(q.jitter) * time.Microsecond,
		CongestionWindow: uint64(max(cwnd, 0)),
		SmoothedRTT:      srtt,
		SendRate:         uint64(float64(q.sentBytesInIntvl) / iv.Seconds()),
	}
	q.last = *f
	q.totalReceived += f.PacketsReceived
	q.totalLost += f.PacketsLost
	q.start = now
	q.pkts, q.bytes, q.havePN, q.sentBytesInIntvl = 0, 0, false, 0
	return f
}

// DirectionStats describes one direction of a session's link. For the
// outbound direction the sender fields are this end's and the receiver fields
// come from the peer's reports; for the inbound direction it is the reverse.
type DirectionStats struct {
	// Receiver's view.
	LossRate       float64       // fraction of packets missing in the last interval
	ReceiveRate    float64       // bytes/s received in the last interval
	DelayVariation time.Duration // interarrival jitter
	// Sender's view.
	SenderWindow int           // congestion window, packets
	SenderRTT    time.Duration // smoothed RTT seen by the sender
	SendRate     float64       // bytes/s sent in the last interval
	// PacketsReceived and PacketsLost are the receiver's totals over the
	// session (sum of all its reports).
	PacketsReceived, PacketsLost uint64
	// UpdatedAt is when the peer's half of this record last arrived (zero if
	// it never did).
	UpdatedAt time.Time
}

func lossRate(f *linkQualityFrame) float64 {
	total := f.PacketsReceived + f.PacketsLost
	if total == 0 {
		return 0
	}
	return float64(f.PacketsLost) / float64(total)
}

func perSecond(bytes uint64, iv time.Duration) float64 {
	if iv <= 0 {
		return 0
	}
	return float64(bytes) / iv.Seconds()
}
