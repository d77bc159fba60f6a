package transportbench

import (
	"fmt"
	"image/color"
	"math"
	"os"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// peerColors keeps each peer's color the same in every chart.
var peerColors = map[string]color.RGBA{
	"tmp":         {R: 0x2f, G: 0x6f, B: 0xed, A: 0xff},
	"http2-bbr":   {R: 0x2a, G: 0xa1, B: 0x98, A: 0xff},
	"http2-cubic": {R: 0xe0, G: 0x8e, B: 0x0b, A: 0xff},
	"http3":       {R: 0xc0, G: 0x39, B: 0x2b, A: 0xff},
	"http1":       {R: 0x8e, G: 0x44, B: 0xad, A: 0xff},
}

// WriteChart draws the report as a PNG: goodput (workload a) and urgent
// p99 latency (workload b), grouped by profile, one bar per peer.
func (rep Report) WriteChart(path string, profiles []ProfileSpec) error {
	var peers []string
	for _, p := range Peers() {
		for _, prof := range profiles {
			if rep[prof.Name][p.Name()] != nil {
				peers = append(peers, p.Name())
				break
			}
		}
	}
	if len(peers) == 0 {
		return fmt.Errorf("chart: no results")
	}
	var names []string
	for _, prof := range profiles {
		names = append(names, prof.Name)
	}
	panel := func(title, ylabel string, value func(ProfileSpec, *Result) float64) (*plot.Plot, error) {
		p := plot.New()
		p.Title.Text = title
		p.Y.Label.Text = ylabel
		p.Legend.Top = true
		w := vg.Points(24)
		for i, peer := range peers {
			vals := make(plotter.Values, len(profiles))
			for j, prof := range profiles {
				if r := rep[prof.Name][peer]; r != nil {
					vals[j] = value(prof, r)
				}
			}
			bars, err := plotter.NewBarChart(vals, w)
			if err != nil {
				return nil, err
			}
			bars.LineStyle.Width = 0
			bars.Color = peerColors[peer]
			bars.Offset = w * vg.Length(float64(i)-float64(len(peers)-1)/2)
			p.Add(bars)
			p.Legend.Add(peer, bars)
		}
		p.NominalX(names...)
		return p, nil
	}
	// Goodput as a share of each profile's bottleneck, so the profiles
	// (1 Gbit/s down to 20 Mbit/s) fit one scale.
	goodput, err := panel("Bulk goodput (32 × 4 MB), % of the bottleneck: higher is better", "% of link rate",
		func(prof ProfileSpec, r *Result) float64 { return 100 * r.GoodputMbps * 1e6 / prof.RateBps })
	if err != nil {
		return err
	}
	// Headroom above 100 % keeps the legend clear of the bars.
	goodput.Y.Min, goodput.Y.Max = 0, 135
	goodput.Y.Tick.Marker = plot.ConstantTicks(ticks([]float64{0, 20, 40, 60, 80, 100}, func(v float64) float64 { return v }))
	// Urgent latency spans 5 ms to 10 s, so it is drawn on a log scale: the
	// bars are log10(ms), from 1 ms. (gonum's LogScale cannot draw bars,
	// which start at zero.)
	urgent, err := panel("Urgent 10 kB requests under bulk load: p99, lower is better", "ms (log scale)",
		func(_ ProfileSpec, r *Result) float64 { return math.Log10(max(r.P99UrgentMs, 1)) })
	if err != nil {
		return err
	}
	urgent.Y.Min, urgent.Y.Max = 0, 5.2
	urgent.Y.Tick.Marker = plot.ConstantTicks(ticks([]float64{1, 10, 100, 1000, 10000}, math.Log10))
	img := vgimg.New(vg.Points(900), vg.Points(760))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 2, Cols: 1, PadX: vg.Points(10), PadY: vg.Points(16), PadTop: vg.Points(8), PadBottom: vg.Points(8), PadLeft: vg.Points(8), PadRight: vg.Points(8)}
	canvases := plot.Align([][]*plot.Plot{{goodput}, {urgent}}, tiles, dc)
	goodput.Draw(canvases[0][0])
	urgent.Draw(canvases[1][0])
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// ticks labels each value at the position pos gives it.
func ticks(values []float64, pos func(float64) float64) []plot.Tick {
	var t []plot.Tick
	for _, v := range values {
		t = append(t, plot.Tick{Value: pos(v), Label: fmt.Sprintf("%g", v)})
	}
	return t
}
