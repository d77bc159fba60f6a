package edgecache

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestCacheControlParsesDirectivesAsRFC9111Says(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want cacheControl
	}{
		{[]string{"max-age=60, public"}, cacheControl{"max-age": "60", "public": ""}},
		{[]string{"MAX-AGE=60", "No-Store"}, cacheControl{"max-age": "60", "no-store": ""}},
		{[]string{`private="Set-Cookie, X-Foo", max-age=5`}, cacheControl{"private": "Set-Cookie, X-Foo", "max-age": "5"}},
		{[]string{`no-cache="a\"b"`}, cacheControl{"no-cache": `a"b`}},
		{[]string{",,, ,max-age = 3"}, cacheControl{"max-age": "3"}},
		{[]string{"max-age=10, max-age=5"}, cacheControl{"max-age": "5"}}, // duplicates: the lowest
		{[]string{`"quoted-name"=1, s-maxage=7`}, cacheControl{"s-maxage": "7"}},
		{[]string{`max-age="30`}, cacheControl{"max-age": "30"}}, // unterminated quote
		{[]string{"="}, cacheControl{}},
	} {
		h := http.Header{"Cache-Control": tc.in}
		got := parseCacheControl(h)
		if len(got) != len(tc.want) {
			t.Errorf("%q: got %v, want %v", tc.in, got, tc.want)
			continue
		}
		for k, v := range tc.want {
			if got[k] != v {
				t.Errorf("%q: %s = %q, want %q", tc.in, k, got[k], v)
			}
		}
	}
}

func TestCacheControlInvalidDeltaSecondsMakesAResponseStale(t *testing.T) {
	for _, v := range []string{"max-age=-1", "max-age=abc", "max-age=", "max-age=1.5"} {
		h := http.Header{"Cache-Control": {v}, "Date": {time.Now().UTC().Format(http.TimeFormat)}}
		if d := freshnessLifetime(200, h, parseCacheControl(h), time.Hour); d != 0 {
			t.Errorf("%s: lifetime %v, want 0 (stale)", v, d)
		}
	}
	// Values beyond 2^31 are clamped, not rejected (§1.2.2).
	cc := parseCacheControl(http.Header{"Cache-Control": {"max-age=99999999999999999999"}})
	if d, _, valid := cc.duration("max-age"); !valid || d != (1<<31)*time.Second {
		t.Errorf("huge max-age: %v valid=%v", d, valid)
	}
}

func TestCacheControlBoundsHostileFields(t *testing.T) {
	h := http.Header{}
	for i := 0; i < 1000; i++ {
		h.Add("Cache-Control", strings.Repeat("x", 100)+"=1")
	}
	h.Add("Cache-Control", "d"+strings.Repeat(",a", 100000))
	cc := parseCacheControl(h)
	if len(cc) > maxDirectives {
		t.Fatalf("%d directives kept, bound is %d", len(cc), maxDirectives)
	}
}

// FuzzParseCacheControl: any field, from an origin or a client, parses
// without panicking, within the bounds, and the freshness computed from
// it is never negative.
func FuzzParseCacheControl(f *testing.F) {
	for _, s := range []string{
		"max-age=60, public", `private="a,b"`, `no-cache="\"`, "s-maxage=1, stale-while-revalidate=30",
		"max-age=99999999999999999999999", `=,=,="`, "\x00\xff", "max-age=1,max-age=0",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h := http.Header{"Cache-Control": {s}}
		cc := parseCacheControl(h)
		if len(cc) > maxDirectives {
			t.Fatalf("%d directives", len(cc))
		}
		for k := range cc {
			if k == "" || !isToken(k) || strings.ToLower(k) != k {
				t.Fatalf("bad directive name %q", k)
			}
		}
		if d := freshnessLifetime(200, h, cc, time.Hour); d < 0 {
			t.Fatalf("negative lifetime %v", d)
		}
		staleWindow("stale-if-error", cc, cc)
	})
}
