package esi

import (
	"bytes"
	"html"
	"strings"
)

// The markup ESI 1.0 (W3C Note, 2001) defines and this processor
// implements, with Akamai's try/attempt/except:
//
//	<esi:include src="…" [alt="…"] [onerror="continue"]/>
//	<esi:remove> … </esi:remove>          dropped (the page without ESI)
//	<esi:comment text="…"/>               dropped
//	<!--esi … -->                         the markers dropped, the inside processed
//	<esi:try><esi:attempt> … </esi:attempt><esi:except> … </esi:except></esi:try>
//
// Other esi: elements (vars, choose, inline) are not implemented: their
// tags are dropped and their content kept, so a page degrades to what it
// says between them rather than to raw markup.
//
// The parser is incremental: it is fed the template as the origin sends
// it, and hands out what it has parsed so far, so the text before the
// first include reaches the client before the template has ended. It
// never fails: markup it cannot make sense of is kept as text or dropped,
// as a browser would.

// node is one parsed piece of a template.
type node struct {
	text []byte   // literal bytes (when inc and try are nil)
	inc  *include // an esi:include
	try  *tryNode // an esi:try
}

type include struct {
	src, alt string
	// cont is onerror="continue". The processor never fails a page for a
	// fragment, so it only documents the author's intent; it is kept for
	// the log.
	cont bool
}

type tryNode struct {
	attempt, except []node
}

// Limits on what the parser holds while it waits for more input. A tag
// longer than maxTag is not ESI markup (ESI tags are short): it is passed
// through as text. Try blocks deeper than maxTryDepth are flattened.
const (
	maxTag      = 8 << 10
	maxTryDepth = 8
)

var markers = []string{"<esi:", "</esi:", "<!--esi"}

const commentEnd = "-->"

// parser turns a template into nodes, incrementally.
type parser struct {
	buf      []byte  // input not parsed yet
	out      []node  // top-level nodes parsed, not yet taken
	tries    []*open // open esi:try blocks, innermost last
	inRemove bool
	comments int // open <!--esi blocks
	includes int // includes seen in the whole template
	scan     tagScan
}

// open is an esi:try being parsed, and which of its parts is open.
type open struct {
	t       *tryNode
	section int // 0 none, 1 attempt, 2 except
}

// feed parses p and returns the top-level nodes complete so far. The
// slices returned are the caller's.
func (p *parser) feed(in []byte) []node {
	p.buf = append(p.buf, in...)
	p.parse(false)
	return p.take()
}

// end parses what is left and closes what is open: an unclosed try is
// taken as closed, an unclosed remove drops the rest.
func (p *parser) end() []node {
	p.parse(true)
	for len(p.tries) > 0 {
		p.closeTry()
	}
	return p.take()
}

func (p *parser) take() []node {
	out := p.out
	p.out = nil
	return out
}

// emit adds n where the parser is: inside the open try section, or at the
// top level.
func (p *parser) emit(n node) {
	if len(p.tries) == 0 {
		if n.inc == nil && n.try == nil && len(p.out) > 0 {
			last := &p.out[len(p.out)-1]
			if last.inc == nil && last.try == nil {
				last.text = append(last.text, n.text...)
				return
			}
		}
		p.out = append(p.out, n)
		return
	}
	o := p.tries[len(p.tries)-1]
	switch o.section {
	case 1:
		o.t.attempt = append(o.t.attempt, n)
	case 2:
		o.t.except = append(o.t.except, n)
	}
	// Outside attempt and except, a try holds only whitespace: dropped.
}

func (p *parser) text(b []byte) {
	if len(b) == 0 || p.inRemove {
		return
	}
	p.emit(node{text: bytes.Clone(b)})
}

func (p *parser) parse(final bool) {
	for len(p.buf) > 0 {
		if p.inRemove {
			const end = "</esi:remove>"
			i := indexFold(p.buf, end)
			if i < 0 {
				if final {
					p.buf = p.buf[:0]
				} else if len(p.buf) > len(end) {
					// Keep only what may be the start of the end tag.
					p.buf = append(p.buf[:0], p.buf[len(p.buf)-len(end)+1:]...)
				}
				return
			}
			p.buf = p.buf[i+len(end):]
			p.inRemove = false
			continue
		}
		i, m, partial := p.nextMarker(final)
		if i < 0 {
			p.text(p.buf)
			p.buf = p.buf[:0]
			return
		}
		p.text(p.buf[:i])
		p.buf = p.buf[i:]
		if partial {
			return // wait for the rest of the marker
		}
		switch m {
		case commentEnd:
			p.comments--
			p.buf = p.buf[len(commentEnd):]
		case "<!--esi":
			p.comments++
			p.buf = p.buf[len(m):]
		default:
			end := p.tagEnd()
			if end < 0 {
				if !final && len(p.buf) < maxTag {
					return // wait for the tag's end
				}
				p.scan = tagScan{}
				// Not a tag after all: pass the marker on as text.
				p.text(p.buf[:len(m)])
				p.buf = p.buf[len(m):]
				continue
			}
			p.scan = tagScan{}
			p.tag(p.buf[:end+1])
			p.buf = p.buf[end+1:]
		}
	}
}

// nextMarker finds the first marker in buf: its offset, which one, and
// whether buf ends inside it (only a proper prefix has arrived so far).
func (p *parser) nextMarker(final bool) (int, string, bool) {
	for i := 0; i < len(p.buf); i++ {
		c := p.buf[i]
		if c != '<' && (c != '-' || p.comments == 0) {
			continue
		}
		cands := markers
		if c == '-' {
			cands = []string{commentEnd}
		}
		rest := p.buf[i:]
		for _, m := range cands {
			if hasPrefixFold(rest, m) {
				return i, m, false
			}
			if !final && len(rest) < len(m) && hasPrefixFold([]byte(m), string(rest)) {
				return i, m, true
			}
		}
	}
	return -1, "", false
}

// tag handles one complete <esi:…> or </esi:…> tag.
func (p *parser) tag(t []byte) {
	closing := t[1] == '/'
	body := string(t[len("<esi:"):])
	if closing {
		body = string(t[len("</esi:"):])
	}
	body = strings.TrimSuffix(strings.TrimSuffix(body, ">"), "/")
	name, attrs, _ := strings.Cut(strings.TrimSpace(body), " ")
	if i := strings.IndexAny(name, "\t\r\n"); i >= 0 {
		name, attrs = name[:i], name[i:]+" "+attrs
	}
	name = strings.ToLower(name)
	if closing {
		switch name {
		case "try":
			if len(p.tries) > 0 {
				p.closeTry()
			}
		case "attempt", "except":
			if len(p.tries) > 0 {
				p.tries[len(p.tries)-1].section = 0
			}
		}
		return
	}
	switch name {
	case "include":
		a := parseAttrs(attrs)
		if a["src"] == "" {
			return
		}
		p.includes++
		p.emit(node{inc: &include{src: a["src"], alt: a["alt"], cont: a["onerror"] == "continue"}})
	case "remove":
		if !strings.HasSuffix(string(t), "/>") {
			p.inRemove = true
		}
	case "try":
		if len(p.tries) < maxTryDepth {
			p.tries = append(p.tries, &open{t: &tryNode{}})
		}
	case "attempt", "except":
		if len(p.tries) > 0 {
			o := p.tries[len(p.tries)-1]
			o.section = 1
			if name == "except" {
				o.section = 2
			}
		}
	}
	// comment, and the elements not implemented: the tag is dropped.
}

func (p *parser) closeTry() {
	o := p.tries[len(p.tries)-1]
	p.tries = p.tries[:len(p.tries)-1]
	p.emit(node{try: o.t})
}

// tagScan is how far tagEnd has looked into a tag that has not ended yet,
// so that a tag arriving a byte at a time costs linear time, not
// quadratic.
type tagScan struct {
	next  int  // the first byte not looked at
	quote byte // the quote open at next, or 0
}

// tagEnd returns the index of the '>' that ends the tag at the start of
// buf, skipping quoted attribute values, or -1.
func (p *parser) tagEnd() int {
	for i := p.scan.next; i < len(p.buf); i++ {
		c := p.buf[i]
		switch {
		case p.scan.quote != 0:
			if c == p.scan.quote {
				p.scan.quote = 0
			}
		case c == '"' || c == '\'':
			p.scan.quote = c
		case c == '>':
			return i
		}
	}
	p.scan.next = len(p.buf)
	return -1
}

// parseAttrs reads name="value", name='value' and name=value pairs.
// Values are HTML-unescaped (&amp; in a src is a literal &).
func parseAttrs(s string) map[string]string {
	a := map[string]string{}
	for {
		s = strings.TrimLeft(s, " \t\r\n")
		eq := strings.IndexByte(s, '=')
		if eq <= 0 {
			return a
		}
		name := strings.ToLower(strings.TrimSpace(s[:eq]))
		s = strings.TrimLeft(s[eq+1:], " \t\r\n")
		var v string
		if s != "" && (s[0] == '"' || s[0] == '\'') {
			end := strings.IndexByte(s[1:], s[0])
			if end < 0 {
				v, s = s[1:], ""
			} else {
				v, s = s[1:1+end], s[2+end:]
			}
		} else {
			end := strings.IndexAny(s, " \t\r\n")
			if end < 0 {
				end = len(s)
			}
			v, s = s[:end], s[end:]
		}
		if _, dup := a[name]; !dup {
			a[name] = html.UnescapeString(v)
		}
	}
}

func hasPrefixFold(b []byte, prefix string) bool {
	return len(b) >= len(prefix) && bytes.EqualFold(b[:len(prefix)], []byte(prefix))
}

func indexFold(b []byte, s string) int {
	for i := 0; i+len(s) <= len(b); i++ {
		if hasPrefixFold(b[i:], s) {
			return i
		}
	}
	return -1
}
