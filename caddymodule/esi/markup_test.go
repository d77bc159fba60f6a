package esi

import (
	"fmt"
	"strings"
	"testing"
)

// render prints parsed nodes in a short form: text as is, an include as
// [src|alt], a try as {attempt||except}.
func render(nodes []node) string {
	var b strings.Builder
	for _, n := range nodes {
		switch {
		case n.inc != nil:
			fmt.Fprintf(&b, "[%s|%s]", n.inc.src, n.inc.alt)
		case n.try != nil:
			fmt.Fprintf(&b, "{%s||%s}", render(n.try.attempt), render(n.try.except))
		default:
			b.Write(n.text)
		}
	}
	return b.String()
}

// parseChunks feeds the template in pieces of n bytes.
func parseChunks(tmpl string, n int) string {
	var p parser
	var nodes []node
	for len(tmpl) > 0 {
		k := min(n, len(tmpl))
		nodes = append(nodes, p.feed([]byte(tmpl[:k]))...)
		tmpl = tmpl[k:]
	}
	return render(append(nodes, p.end()...))
}

func TestMarkup(t *testing.T) {
	for _, c := range []struct{ name, in, want string }{
		{"plain HTML passes", `<p class="a">x &lt; y <!-- c --></p>`, `<p class="a">x &lt; y <!-- c --></p>`},
		{"include", `a<esi:include src="/f"/>b`, `a[/f|]b`},
		{"include with alt, entities, upper case", `<ESI:Include SRC="/f?a=1&amp;b=2" alt='/g' onerror="continue" />`, `[/f?a=1&b=2|/g]`},
		{"include with a closing tag", `<esi:include src="/f"></esi:include>x`, `[/f|]x`},
		{"include without src is dropped", `a<esi:include alt="/g"/>b`, `ab`},
		{"a > inside a quoted value", `<esi:include src="/f?q=a>b"/>`, `[/f?q=a>b|]`},
		{"remove drops its content", `a<esi:remove><a href="/f">f</a></esi:remove>b`, `ab`},
		{"comment is dropped", `a<esi:comment text="why"/>b`, `ab`},
		{"esi comment markers go, content stays", `a<!--esi <p><esi:include src="/f"/></p> -->b`, `a <p>[/f|]</p> b`},
		{"plain comment end outside esi comment stays", `a-->b`, `a-->b`},
		{"try", `<esi:try><esi:attempt>x<esi:include src="/f"/></esi:attempt><esi:except>y</esi:except></esi:try>z`, `{x[/f|]||y}z`},
		{"whitespace between try parts is dropped", "<esi:try>\n <esi:attempt>x</esi:attempt>\n <esi:except>y</esi:except>\n</esi:try>", `{x||y}`},
		{"nested try", `<esi:try><esi:attempt><esi:try><esi:attempt>i</esi:attempt><esi:except>j</esi:except></esi:try></esi:attempt><esi:except>e</esi:except></esi:try>`, `{{i||j}||e}`},
		{"unclosed try is closed at the end", `<esi:try><esi:attempt>x`, `{x||}`},
		{"unclosed remove drops the rest", `a<esi:remove>b`, `a`},
		{"unknown esi elements: tags go, content stays", `<esi:choose><esi:when test="1">w</esi:when></esi:choose>`, `w`},
		{"stray closers are ignored", `</esi:try></esi:except>x`, `x`},
		{"an unterminated tag is text", `a<esi:include src="/f` + "\n", `a<esi:include src="/f` + "\n"},
		{"a lone < at the end is text", `a<`, `a<`},
		{"<e that is not esi", `<em>x</em><es>`, `<em>x</em><es>`},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, n := range []int{1, 2, 3, 7, 1 << 20} {
				if got := parseChunks(c.in, n); got != c.want {
					t.Fatalf("in chunks of %d:\n got %q\nwant %q", n, got, c.want)
				}
			}
		})
	}
}

// Text before the first include is handed out before the template ends:
// what lets the page stream.
func TestMarkupHandsOutTextAtOnce(t *testing.T) {
	var p parser
	got := render(p.feed([]byte(`<html><head>…</head><body><esi:inc`)))
	if got != `<html><head>…</head><body>` {
		t.Fatalf("first feed gave %q", got)
	}
	got = render(p.feed([]byte(`lude src="/f"/>tail`)))
	if got != `[/f|]tail` {
		t.Fatalf("second feed gave %q", got)
	}
}

// A tag that never ends is bounded: past maxTag bytes it is text.
func TestMarkupBoundsAnOpenTag(t *testing.T) {
	var p parser
	p.feed([]byte(`<esi:include src="`))
	for range 3 {
		p.feed([]byte(strings.Repeat("x", maxTag)))
	}
	if len(p.buf) > 2*maxTag {
		t.Fatalf("parser holds %d bytes of an open tag", len(p.buf))
	}
}

// A remove block is not held in memory while it lasts.
func TestMarkupBoundsARemove(t *testing.T) {
	var p parser
	p.feed([]byte(`<esi:remove>`))
	for range 100 {
		p.feed([]byte(strings.Repeat("y", 4096)))
	}
	if len(p.buf) > 64 {
		t.Fatalf("parser holds %d bytes of a remove block", len(p.buf))
	}
	if got := render(append(p.feed([]byte(`</esi:remove>z`)), p.end()...)); got != "z" {
		t.Fatalf("after remove: %q", got)
	}
}

// Try blocks nest at most maxTryDepth deep; deeper ones are flattened.
func TestMarkupBoundsTryDepth(t *testing.T) {
	in := strings.Repeat(`<esi:try><esi:attempt>`, 100) + "x" + strings.Repeat(`</esi:attempt></esi:try>`, 100)
	got := parseChunks(in, 5)
	if n := strings.Count(got, "{"); n != maxTryDepth {
		t.Fatalf("%d nested tries, want %d: %q", n, maxTryDepth, got)
	}
}

func FuzzMarkup(f *testing.F) {
	for _, s := range []string{
		`a<esi:include src="/f" alt="/g"/>b`,
		`<esi:try><esi:attempt>x</esi:attempt><esi:except>y</esi:except></esi:try>`,
		`<!--esi <esi:include src="/f"/> -->`, `<esi:remove>x</esi:remove>`, `<esi:`, `<!--e`, `-->`,
		`<esi:include src='/a' alt=/b onerror=continue>`,
	} {
		f.Add(s, uint8(3))
	}
	f.Fuzz(func(t *testing.T, in string, chunk uint8) {
		whole := parseChunks(in, len(in)+1)
		if got := parseChunks(in, int(chunk%16)+1); got != whole {
			t.Fatalf("chunked parse differs:\n%q\n%q", got, whole)
		}
		if !strings.Contains(strings.ToLower(in), "<") && whole != in {
			t.Fatalf("text without markup changed: %q -> %q", in, whole)
		}
	})
}

// A tag that arrives a byte at a time is scanned once, not once per byte:
// 8 kB of an open tag in 1-byte writes stays linear.
func TestMarkupOpenTagIsLinear(t *testing.T) {
	in := `<esi:include src="` + strings.Repeat("x", maxTag-64) + `"/>`
	var p parser
	var nodes []node
	for i := range len(in) {
		nodes = append(nodes, p.feed([]byte{in[i]})...)
	}
	if got := render(append(nodes, p.end()...)); got != "["+strings.Repeat("x", maxTag-64)+"|]" {
		t.Fatalf("got %.40q", got)
	}
	if p.scan.next != 0 {
		t.Fatalf("the scan position outlived its tag: %d", p.scan.next)
	}
}
