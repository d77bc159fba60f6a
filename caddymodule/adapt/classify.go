package adapt

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Class is what the front-end serves a client: the seed's "desired format
// of content … specified by client 605 … and/or the system can determine
// the required format for client 605 and its connection to front-end 601
// indirectly".
type Class string

const (
	Full Class = "full" // the page as the origin made it
	Lite Class = "lite" // lighter: smaller images, fewer extras
	Text Class = "text" // the content, hardly any images
)

// rank orders classes from richest to lightest: a client gets the
// lightest class any signal asks for.
func (c Class) rank() int {
	switch c {
	case Lite:
		return 1
	case Text:
		return 2
	}
	return 0
}

func lighter(a, b Class) Class {
	if b.rank() > a.rank() {
		return b
	}
	return a
}

// Thresholds are the owner's rules (the seed: "the owner of web site 610
// establishes rules"): how slow a link must be for each lighter class.
type Thresholds struct {
	// LiteRTT: a round trip at least this long gets lite. Default 120ms:
	// DNS steers a client to its nearest front-end, so a longer round trip
	// than a continent's is the client's own access link (a mobile
	// network's is 100–300 ms).
	LiteRTT time.Duration `json:"lite_rtt,omitempty"`
	// LiteDownlink: a downlink below this many bits per second gets lite.
	// Default 2 Mbit/s.
	LiteDownlink float64 `json:"lite_downlink,omitempty"`
	// TextRTT and TextDownlink, for text. Defaults 1s and 200 kbit/s.
	TextRTT      time.Duration `json:"text_rtt,omitempty"`
	TextDownlink float64       `json:"text_downlink,omitempty"`
}

func (t *Thresholds) defaults() {
	if t.LiteRTT == 0 {
		t.LiteRTT = 120 * time.Millisecond
	}
	if t.LiteDownlink == 0 {
		t.LiteDownlink = 2e6
	}
	if t.TextRTT == 0 {
		t.TextRTT = time.Second
	}
	if t.TextDownlink == 0 {
		t.TextDownlink = 200e3
	}
}

// link is what is known of a client's path: from its hints or measured.
// Zero means unknown.
type link struct {
	rtt      time.Duration
	downlink float64 // bits per second
}

func (t *Thresholds) classOf(l link) Class {
	switch {
	case l.rtt >= t.TextRTT || (l.downlink > 0 && l.downlink < t.TextDownlink):
		return Text
	case l.rtt >= t.LiteRTT || (l.downlink > 0 && l.downlink < t.LiteDownlink):
		return Lite
	}
	return Full
}

// classify decides a request's class from what the client says (Save-Data,
// ECT, RTT and Downlink, RFC 8942 client hints) and from what the
// front-end measured of its connection, taking the lightest either asks
// for. reason says which signal decided, for the metric.
func (t *Thresholds) classify(h http.Header, measured link) (Class, string) {
	c, reason := Full, "none"
	if strings.EqualFold(strings.TrimSpace(h.Get("Save-Data")), "on") {
		c, reason = Lite, "save-data"
	}
	// ECT (Network Information API): slow-2g, 2g, 3g, 4g.
	switch strings.ToLower(strings.TrimSpace(h.Get("ECT"))) {
	case "slow-2g", "2g":
		c, reason = lighter(c, Text), "hint"
	case "3g":
		if c.rank() < Lite.rank() {
			c, reason = Lite, "hint"
		}
	}
	var hinted link
	if v, err := strconv.ParseFloat(strings.TrimSpace(h.Get("RTT")), 64); err == nil && v > 0 {
		hinted.rtt = time.Duration(v * float64(time.Millisecond))
	}
	if v, err := strconv.ParseFloat(strings.TrimSpace(h.Get("Downlink")), 64); err == nil && v > 0 {
		hinted.downlink = v * 1e6 // the hint is in Mbit/s
	}
	if hc := t.classOf(hinted); hc.rank() > c.rank() {
		c, reason = hc, "hint"
	}
	if mc := t.classOf(measured); mc.rank() > c.rank() {
		c, reason = mc, "measured"
	}
	return c, reason
}

// imageFormat is the best image format the client accepts, of those the
// front-end encodes.
func imageFormat(accept string) string {
	for _, part := range strings.Split(accept, ",") {
		mt, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(mt), "image/webp") {
			continue
		}
		q := 1.0
		for _, p := range strings.Split(params, ";") {
			if k, v, ok := strings.Cut(strings.TrimSpace(p), "="); ok && strings.EqualFold(k, "q") {
				if f, err := strconv.ParseFloat(v, 64); err == nil {
					q = f
				}
			}
		}
		if q > 0 {
			return "webp"
		}
	}
	return "jpeg"
}
