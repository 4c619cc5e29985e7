package load

import (
	"fmt"
	"html"
	"io"
	"math"
	"strings"
	"time"
)

var (
	quantiles      = []float64{0.5, 0.9, 0.99, 0.999}
	quantileNames  = []string{"p50", "p90", "p99", "p99.9"}
	quantileColors = []string{"#9ecae1", "#4292c6", "#08519c", "#08306b"}
	backendColors  = []string{"#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666"}
)

// WriteSVG draws one scenario's runs: latency percentiles per policy (log
// scale) above, and each backend's share of the calls over time per policy
// below, with the scenario's events marked.
func WriteSVG(w io.Writer, rs Results, sc *Scenario) {
	var runs []*Result
	for _, r := range rs {
		if r.Scenario.ID == sc.ID {
			runs = append(runs, r)
		}
	}
	const width, top, cellW, cellH, cols = 960, 300, 300, 150, 3
	rows := (len(runs) + cols - 1) / cols
	height := top + 40 + rows*(cellH+40) + 30
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="11">`+"\n", width, height)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", width, height)
	fmt.Fprintf(&b, `<text x="10" y="18" font-size="14" font-weight="bold">%s: %s</text>`+"\n", sc.ID, html.EscapeString(sc.Title))
	latencyBars(&b, runs, 60, 56, width-80, top-96)
	for i, r := range runs {
		x := 40 + (i%cols)*(cellW+10)
		y := top + 40 + (i/cols)*(cellH+40)
		sharePanel(&b, r, x, y, cellW-20, cellH)
	}
	// Legend of backends.
	y := height - 15
	for i, spec := range sc.Backends {
		x := 40 + i*90
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="10" height="10" fill="%s"/><text x="%d" y="%d">%s</text>`+"\n",
			x, y-9, backendColors[i%len(backendColors)], x+14, y, html.EscapeString(spec.Name))
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#c00">dashed: %s</text>`+"\n", 40+len(sc.Backends)*90, y, html.EscapeString(eventNames(sc)))
	b.WriteString("</svg>\n")
	io.WriteString(w, b.String())
}

func eventNames(sc *Scenario) string {
	var n []string
	for _, e := range sc.Events {
		n = append(n, e.Name)
	}
	if len(n) == 0 {
		return "no events"
	}
	return strings.Join(n, ", ")
}

// latencyBars draws grouped bars of the percentiles, log-scaled in ms.
func latencyBars(b *strings.Builder, runs []*Result, x0, y0, w, h int) {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, r := range runs {
		for _, q := range quantiles {
			v := float64(r.Stats.Hist.Quantile(q)) / 1e6
			if v > 0 {
				lo, hi = math.Min(lo, v), math.Max(hi, v)
			}
		}
	}
	if math.IsInf(lo, 0) {
		return
	}
	dlo, dhi := math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
	if dhi == dlo {
		dhi++
	}
	yOf := func(v float64) float64 {
		v = math.Max(v, math.Pow(10, dlo))
		return float64(y0+h) - (math.Log10(v)-dlo)/(dhi-dlo)*float64(h)
	}
	for d := dlo; d <= dhi; d++ {
		y := yOf(math.Pow(10, d))
		fmt.Fprintf(b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/><text x="%d" y="%.1f" text-anchor="end">%s ms</text>`+"\n",
			x0, y, x0+w, y, x0-4, y+4, trimFloat(math.Pow(10, d)))
	}
	group := float64(w) / float64(len(runs))
	bar := group * 0.8 / float64(len(quantiles))
	for i, r := range runs {
		gx := float64(x0) + float64(i)*group + group*0.1
		for j, q := range quantiles {
			v := float64(r.Stats.Hist.Quantile(q)) / 1e6
			y := yOf(v)
			fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s %s: %s ms</title></rect>`+"\n",
				gx+float64(j)*bar, y, bar-1, float64(y0+h)-y, quantileColors[j], r.Policy.Name, quantileNames[j], trimFloat(v))
		}
		fmt.Fprintf(b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", gx+group*0.4, y0+h+14, r.Policy.Name)
		fmt.Fprintf(b, `<text x="%.1f" y="%d" text-anchor="middle" fill="#555">%.0f/s, %d err</text>`+"\n",
			gx+group*0.4, y0+h+28, r.RPS(), r.Stats.Errors.Load())
	}
	for j, n := range quantileNames {
		x := x0 + w - 260 + j*65
		fmt.Fprintf(b, `<rect x="%d" y="%d" width="10" height="10" fill="%s"/><text x="%d" y="%d">%s</text>`+"\n",
			x, y0-22, quantileColors[j], x+14, y0-13, n)
	}
	fmt.Fprintf(b, `<text x="%d" y="%d">latency percentiles (log scale)</text>`+"\n", x0, y0-13)
}

// sharePanel draws each backend's share of calls over time, stacked.
func sharePanel(b *strings.Builder, r *Result, x0, y0, w, h int) {
	series := shareSeries(r, 60)
	if len(series) == 0 || len(series[0]) == 0 {
		return
	}
	n := len(series[0])
	fmt.Fprintf(b, `<text x="%d" y="%d">%s: share of calls over %v</text>`+"\n", x0, y0-6, r.Policy.Name, r.Span.Round(100*time.Millisecond))
	fmt.Fprintf(b, `<rect x="%d" y="%d" width="%d" height="%d" fill="#f4f4f4"/>`+"\n", x0, y0, w, h)
	base := make([]float64, n)
	xOf := func(i int) float64 { return float64(x0) + float64(i)*float64(w)/float64(n) }
	for bi, s := range series {
		var pts []string
		for i := 0; i < n; i++ {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", xOf(i), float64(y0+h)-(base[i]+s[i])*float64(h)),
				fmt.Sprintf("%.1f,%.1f", xOf(i+1), float64(y0+h)-(base[i]+s[i])*float64(h)))
		}
		for i := n - 1; i >= 0; i-- {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", xOf(i+1), float64(y0+h)-base[i]*float64(h)),
				fmt.Sprintf("%.1f,%.1f", xOf(i), float64(y0+h)-base[i]*float64(h)))
		}
		for i := range base {
			base[i] += s[i]
		}
		fmt.Fprintf(b, `<polygon points="%s" fill="%s"/>`+"\n", strings.Join(pts, " "), backendColors[bi%len(backendColors)])
	}
	total := r.Span
	for _, at := range r.EventAt {
		x := float64(x0) + float64(at)/float64(total)*float64(w)
		fmt.Fprintf(b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#c00" stroke-dasharray="4,3" stroke-width="1.5"/>`+"\n", x, y0, x, y0+h)
	}
	for _, f := range []float64{0, 0.5, 1} {
		y := float64(y0+h) - f*float64(h)
		fmt.Fprintf(b, `<text x="%d" y="%.1f" text-anchor="end" font-size="9">%.0f%%</text>`+"\n", x0-3, y+3, 100*f)
	}
}
