package transportbench

import (
	"image/png"
	"os"
	"path/filepath"
	"testing"
)

func TestWriteChartDrawsAPNG(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	rep := Report{
		"lossy":       {"tmp": {GoodputMbps: 88, P99UrgentMs: 99}, "http2-bbr": {GoodputMbps: 87, P99UrgentMs: 914, Share: f(0.5)}},
		"continental": {"tmp": {GoodputMbps: 181, P99UrgentMs: 90}, "http3": {GoodputMbps: 14}},
	}
	var profs []ProfileSpec
	for _, n := range []string{"continental", "lossy"} {
		p, _ := ProfileByName(n)
		profs = append(profs, p)
	}
	path := filepath.Join(t.TempDir(), "chart.png")
	if err := rep.WriteChart(path, profs); err != nil {
		t.Fatal(err)
	}
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	img, err := png.Decode(fh)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() < 800 || b.Dy() < 600 {
		t.Fatalf("chart is %v", b)
	}
}
