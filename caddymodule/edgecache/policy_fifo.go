package edgecache

import "container/list"

// fifoOrder evicts the entry stored first, whatever its use since.
type fifoOrder struct{ l *list.List }

func newFIFOOrder() *fifoOrder { return &fifoOrder{l: list.New()} }

func (o *fifoOrder) added(n *node)   { n.elem = o.l.PushBack(n) }
func (o *fifoOrder) touched(*node)   {}
func (o *fifoOrder) removed(n *node) { o.l.Remove(n.elem.(*list.Element)) }
func (o *fifoOrder) victim() *node   { return o.l.Front().Value.(*node) }
