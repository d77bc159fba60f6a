package esi

import (
	"context"
	"io"
	"sync"
)

// assembly is one page being put together: the template's pieces in
// order, each either text or a part still being fetched. Text before the
// first part still pending goes out as soon as it is parsed (the issue's
// "bytes before the first unresolved include go out at once"); every part
// is fetched from the moment its tag is parsed, all in parallel.
type assembly struct {
	ctx    context.Context
	page   *pageFetcher
	parser parser
	queue  []piece // pieces not written yet, in page order
	queued int     // bytes of text in queue
	out    io.Writer
	flush  func()
	wg     sync.WaitGroup // the goroutines resolving parts
	err    error          // the first error writing to the client
	dirty  bool           // written since the last flush
}

// piece is literal text, or a part that resolves to bytes.
type piece struct {
	text []byte
	part *part
}

// part is an include or a try block being resolved. done is closed once
// body (what goes into the page) and ok (whether it resolved without
// falling back to nothing) are set.
type part struct {
	done chan struct{}
	body []byte
	ok   bool
}

// maxQueued bounds the template text held behind a part still pending:
// past it, the template's writer waits for the part, which pushes back on
// the origin's stream instead of holding an unbounded page in memory.
const maxQueued = 1 << 20

// write parses b, queues what it holds and writes what is ready.
func (a *assembly) write(b []byte) error {
	a.add(a.parser.feed(b))
	a.pump(false)
	if a.queued > maxQueued {
		a.pump(true) // wait for the parts: backpressure
	}
	return a.err
}

// finish parses the rest of the template, then writes every piece, waiting
// for each part in turn.
func (a *assembly) finish() error {
	a.add(a.parser.end())
	a.pump(true)
	return a.err
}

// wait lets the parts' goroutines end. They stop early when the client's
// context is done.
func (a *assembly) wait() { a.wg.Wait() }

func (a *assembly) add(nodes []node) {
	for _, p := range a.startAll(nodes) {
		a.queue = append(a.queue, p)
		a.queued += len(p.text)
	}
}

// pump writes the queue's head while it is ready; with block, it waits
// for each part in turn until the queue is empty. What it wrote is
// flushed to the client only when it is about to wait: a page whose parts
// are ready goes out in as few writes as the client's buffer makes.
func (a *assembly) pump(block bool) {
	for len(a.queue) > 0 && a.err == nil {
		p := a.queue[0]
		b := p.text
		if p.part != nil {
			select {
			case <-p.part.done:
			default:
				a.flushIfDirty()
				if !block {
					return
				}
				select {
				case <-p.part.done:
				case <-a.ctx.Done():
					a.err = a.ctx.Err()
					return
				}
			}
			b = p.part.body
		} else {
			a.queued -= len(b)
		}
		a.queue[0] = piece{}
		a.queue = a.queue[1:]
		if len(b) > 0 {
			if _, err := a.out.Write(b); err != nil {
				a.err = err
				return
			}
			a.dirty = true
		}
	}
}

func (a *assembly) flushIfDirty() {
	if a.dirty {
		a.dirty = false
		a.flush()
	}
}

// startInclude fetches an include's src, then its alt, in the background.
func (a *assembly) startInclude(inc *include) *part {
	p := &part{done: make(chan struct{})}
	if body, ok := a.page.cached(inc); ok {
		p.body, p.ok = body, true
		close(p.done)
		return p
	}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		defer close(p.done)
		p.body, p.ok = a.page.include(a.ctx, inc)
	}()
	return p
}

// startTry resolves an esi:try: the attempt's parts start at once; if any
// include in it failed (src and alt), the except is fetched and used
// instead. Either way the page goes on.
func (a *assembly) startTry(t *tryNode) *part {
	p := &part{done: make(chan struct{})}
	attempt := a.startAll(t.attempt)
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		defer close(p.done)
		body, ok := a.collect(attempt)
		if ok {
			p.body, p.ok = body, true
			a.page.m.tries["attempt"].Inc()
			return
		}
		a.page.m.tries["except"].Inc()
		p.body, _ = a.collect(a.startAll(t.except))
		p.ok = true
	}()
	return p
}

// startAll starts the parts among nodes, and returns them as pieces.
func (a *assembly) startAll(nodes []node) []piece {
	ps := make([]piece, 0, len(nodes))
	for _, n := range nodes {
		switch {
		case n.inc != nil:
			ps = append(ps, piece{part: a.startInclude(n.inc)})
		case n.try != nil:
			ps = append(ps, piece{part: a.startTry(n.try)})
		default:
			ps = append(ps, piece{text: n.text})
		}
	}
	return ps
}

// collect waits for a branch's parts and joins it; ok is false if one of
// its parts failed.
func (a *assembly) collect(ps []piece) ([]byte, bool) {
	var body []byte
	ok := true
	for _, p := range ps {
		if p.part == nil {
			body = append(body, p.text...)
			continue
		}
		select {
		case <-p.part.done:
		case <-a.ctx.Done():
			return nil, false
		}
		ok = ok && p.part.ok
		body = append(body, p.part.body...)
	}
	return body, ok
}
