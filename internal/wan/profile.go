// Package wan is a packet-level WAN emulator in userspace. This kernel has
// no netem, so two network namespaces are joined through TUN devices by a
// Go forwarder that applies, per direction, random and Gilbert–Elliott
// burst loss, a rate limit with a drop-tail queue sized in bytes, delay,
// jitter and reordering. It sees IP packets, so it impairs TCP and UDP
// alike. Test hosts get addresses from the benchmarking range 198.18.0.0/15
// (RFC 2544), inside namespaces the emulator creates and removes.
package wan

import (
	"fmt"
	"time"
)

// Profile is the impairment of one direction.
type Profile struct {
	// Delay is the one-way propagation delay.
	Delay time.Duration
	// Jitter spreads each packet's delay uniformly over ±Jitter. Packets
	// keep their order unless Reorder is set.
	Jitter time.Duration
	// Loss is the probability that a packet is lost at random.
	Loss float64
	// Burst, if set, adds Gilbert–Elliott loss: a two-state Markov chain
	// whose bad state loses packets in bursts.
	Burst *GilbertElliott
	// RateBps is the bottleneck rate in bits per second (0: unlimited).
	RateBps float64
	// QueueBytes bounds the drop-tail queue in front of the bottleneck.
	// Default: the bandwidth-delay product of the round trip (2 × Delay).
	QueueBytes int
	// Reorder is the probability that a packet is held back by an extra
	// ReorderGap, letting later packets overtake it.
	Reorder    float64
	ReorderGap time.Duration
}

// GilbertElliott is the classic two-state burst loss model (Gilbert 1960,
// Elliott 1963): P moves good→bad, R bad→good, and each state loses with
// its own probability.
type GilbertElliott struct {
	P, R              float64
	LossGood, LossBad float64
}

// MeanLoss is the model's long-run loss rate.
func (g *GilbertElliott) MeanLoss() float64 {
	if g.P+g.R == 0 {
		return g.LossGood
	}
	bad := g.P / (g.P + g.R)
	return (1-bad)*g.LossGood + bad*g.LossBad
}

func (p Profile) withDefaults() Profile {
	if p.RateBps > 0 && p.QueueBytes == 0 {
		p.QueueBytes = max(int(p.RateBps/8*(2*p.Delay).Seconds()), 64*1500)
	}
	if p.Reorder > 0 && p.ReorderGap == 0 {
		p.ReorderGap = max(p.Jitter, time.Millisecond)
	}
	return p
}

func (p Profile) validate() error {
	switch {
	case p.Delay < 0 || p.Jitter < 0 || p.ReorderGap < 0:
		return fmt.Errorf("wan: negative delay, jitter or reorder gap")
	case p.Jitter > p.Delay:
		return fmt.Errorf("wan: jitter %v larger than delay %v", p.Jitter, p.Delay)
	case p.Loss < 0 || p.Loss >= 1 || p.Reorder < 0 || p.Reorder >= 1:
		return fmt.Errorf("wan: loss and reorder are probabilities in [0, 1)")
	case p.RateBps < 0 || p.QueueBytes < 0:
		return fmt.Errorf("wan: negative rate or queue")
	}
	return nil
}
