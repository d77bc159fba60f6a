package edgecache

import "container/heap"

// lfuOrder evicts the least frequently used entry; among equals, the
// oldest. A min-heap on (frequency, insertion order): O(log n) per access.
type lfuOrder struct{ h lfuHeap }

func (o *lfuOrder) added(n *node)   { n.freq = 1; heap.Push(&o.h, n) }
func (o *lfuOrder) touched(n *node) { n.freq++; heap.Fix(&o.h, n.idx) }
func (o *lfuOrder) removed(n *node) { heap.Remove(&o.h, n.idx) }
func (o *lfuOrder) victim() *node   { return o.h[0] }

type lfuHeap []*node

func (h lfuHeap) Len() int { return len(h) }
func (h lfuHeap) Less(i, j int) bool {
	if h[i].freq != h[j].freq {
		return h[i].freq < h[j].freq
	}
	return h[i].seq < h[j].seq
}
func (h lfuHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i]; h[i].idx = i; h[j].idx = j }
func (h *lfuHeap) Push(x any)   { n := x.(*node); n.idx = len(*h); *h = append(*h, n) }
func (h *lfuHeap) Pop() any {
	old := *h
	n := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return n
}
