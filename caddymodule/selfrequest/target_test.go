package selfrequest

import (
	"errors"
	"net/url"
	"testing"
)

func TestTarget(t *testing.T) {
	base, _ := url.Parse("http://shop.example/product/1?x=1")
	allow := AllowList{"partner.example", "*.CDN.example", "api.example:8443"}
	for ref, want := range map[string]string{
		"/frag/price":                "http://shop.example/frag/price",
		"stock":                      "http://shop.example/product/stock",
		"http://SHOP.example/a":      "http://SHOP.example/a",
		"https://partner.example/w":  "https://partner.example/w",
		"http://img.cdn.example/p":   "http://img.cdn.example/p",
		"http://api.example:8443/v":  "http://api.example:8443/v",
		" /trimmed ":                 "http://shop.example/trimmed",
		"http://evil.example/x":      "",
		"//evil.example/x":           "",
		"file:///etc/passwd":         "",
		"http://cdn.example.evil/x":  "",
		"http://api.example:9000/v":  "",
		"gopher://partner.example/x": "",
	} {
		u, err := Target(base, ref, allow)
		switch {
		case want == "" && !errors.Is(err, ErrRefused):
			t.Errorf("%q: %v, %v; want refused", ref, u, err)
		case want != "" && (err != nil || u.String() != want):
			t.Errorf("%q: %v, %v; want %s", ref, u, err, want)
		}
	}
}
