package cart

import "testing"

var prices = []Item{{1, "Conductor tee", 19.99}, {3, "TMP sticker pack", 4.00}}

func TestCompute(t *testing.T) {
	s := Compute("1.3.3.9.x", prices)
	if s.Items != 3 || s.Unknown != 2 || s.Total != 27.99 || len(s.Lines) != 2 || s.Lines[1].Qty != 2 || s.Lines[1].Subtotal != 8 {
		t.Fatalf("%+v", s)
	}
	if s := Compute("", prices); s.Items != 0 || s.Total != 0 || string(s.JSON()) != `{"lines":[],"items":0,"total":0,"currency":"USD"}` {
		t.Fatalf("empty cart: %s", s.JSON())
	}
}

func FuzzCompute(f *testing.F) {
	f.Add("1.3.3")
	f.Add("..-1.999999999999999999999")
	f.Fuzz(func(t *testing.T, cookie string) {
		if s := Compute(cookie, prices); s.Items > maxItems || s.Total < 0 {
			t.Fatalf("%q: %+v", cookie, s)
		}
	})
}
