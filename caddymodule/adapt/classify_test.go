package adapt

import (
	"net/http"
	"testing"
	"time"
)

func TestClassify(t *testing.T) {
	var th Thresholds
	th.defaults()
	fast := link{rtt: 2 * time.Millisecond}
	for _, c := range []struct {
		name     string
		hdr      map[string]string
		measured link
		want     Class
		reason   string
	}{
		{"a fast client that says nothing", nil, fast, Full, "none"},
		{"Save-Data on", map[string]string{"Save-Data": "on"}, fast, Lite, "save-data"},
		{"Save-Data off", map[string]string{"Save-Data": "off"}, fast, Full, "none"},
		{"ECT 3g", map[string]string{"ECT": "3g"}, fast, Lite, "hint"},
		{"ECT 2g", map[string]string{"ECT": "2g"}, fast, Text, "hint"},
		{"RTT hint", map[string]string{"RTT": "400"}, fast, Lite, "hint"},
		{"a continent away is full", nil, link{rtt: 40 * time.Millisecond}, Full, "none"},
		{"Downlink hint below text", map[string]string{"Downlink": "0.1"}, fast, Text, "hint"},
		{"Downlink hint fast", map[string]string{"Downlink": "50"}, fast, Full, "none"},
		{"measured long round trip, no hints", nil, link{rtt: 300 * time.Millisecond}, Lite, "measured"},
		{"measured slow delivery", nil, link{rtt: 20 * time.Millisecond, downlink: 1e6}, Lite, "measured"},
		{"measured very slow", nil, link{rtt: 1500 * time.Millisecond}, Text, "measured"},
		{"the lightest signal wins", map[string]string{"Save-Data": "on"}, link{rtt: 2 * time.Second}, Text, "measured"},
		{"a hint cannot make a slow link full", map[string]string{"Downlink": "100", "ECT": "4g"}, link{rtt: 300 * time.Millisecond}, Lite, "measured"},
		{"garbage hints are ignored", map[string]string{"RTT": "-5", "Downlink": "x", "ECT": "6g"}, fast, Full, "none"},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range c.hdr {
				h.Set(k, v)
			}
			got, reason := th.classify(h, c.measured)
			if got != c.want || reason != c.reason {
				t.Fatalf("got %s (%s), want %s (%s)", got, reason, c.want, c.reason)
			}
		})
	}
}

func TestImageFormat(t *testing.T) {
	for accept, want := range map[string]string{
		"":                                    "jpeg",
		"image/avif,image/webp,*/*;q=0.8":     "webp",
		"image/webp;q=0":                      "jpeg",
		"image/webp;q=0.5, image/png":         "webp",
		"text/html,application/xhtml+xml,*/*": "jpeg",
	} {
		if got := imageFormat(accept); got != want {
			t.Errorf("Accept %q: %s, want %s", accept, got, want)
		}
	}
}

func TestRewriteVary(t *testing.T) {
	h := http.Header{"Vary": {"Accept-Encoding", ClassHeader + ", " + FormatHeader}}
	rewriteVary(h)
	want := "Accept-Encoding, Save-Data, Ect, Rtt, Downlink, Dpr, Viewport-Width, Width, Accept"
	if got := h.Get("Vary"); got != want {
		t.Fatalf("Vary %q, want %q", got, want)
	}
	h = http.Header{"Vary": {"Cookie"}}
	if rewriteVary(h); h.Get("Vary") != "Cookie" {
		t.Fatalf("a Vary without the front-end's headers changed: %q", h.Get("Vary"))
	}
}

func TestParseRate(t *testing.T) {
	for in, want := range map[string]float64{"2Mbit": 2e6, "500kbit": 5e5, "64000": 64000, "1gbit": 1e9} {
		if got, err := parseRate(in); err != nil || got != want {
			t.Errorf("%q: %v %v, want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "fast", "-1Mbit", "Mbit"} {
		if _, err := parseRate(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}
