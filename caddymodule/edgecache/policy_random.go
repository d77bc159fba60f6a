package edgecache

import "math/rand/v2"

// randomOrder evicts an entry chosen uniformly at random: O(1), no
// bookkeeping on access, and no pathological trace.
type randomOrder struct {
	rng   *rand.Rand
	nodes []*node
}

func (o *randomOrder) added(n *node) { n.idx = len(o.nodes); o.nodes = append(o.nodes, n) }
func (o *randomOrder) touched(*node) {}
func (o *randomOrder) removed(n *node) {
	last := len(o.nodes) - 1
	o.nodes[n.idx] = o.nodes[last]
	o.nodes[n.idx].idx = n.idx
	o.nodes[last] = nil
	o.nodes = o.nodes[:last]
}
func (o *randomOrder) victim() *node { return o.nodes[o.rng.IntN(len(o.nodes))] }
