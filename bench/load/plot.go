package load

import (
	"bufio"
	"fmt"
	"html"
	"io"
	"math"
	"strconv"
	"strings"
)

// The plots are small hand-written SVG line charts: two charts do not justify
// a plotting library in the module, and SVG keeps them diffable and crisp.

// series is one line of a chart.
type series struct {
	name  string
	xs    []float64
	ys    []float64
	color string
	dash  bool
	dots  bool // mark each point (sparse series)
}

// tick is one labelled axis position (in data coordinates after transform).
type tick struct {
	at    float64
	label string
}

// chart is a line chart with a title, labelled axes, grid lines and a legend.
type chart struct {
	title          string
	subtitle       []string // lines under the title
	xLabel, yLabel string
	series         []series
	// xTicks, when set, replaces the automatic x ticks (used for the
	// percentile axis, whose positions are transformed).
	xTicks []tick
	// xFromZero starts the x axis at 0 whatever the data.
	xFromZero bool
}

const (
	plotW, plotH         = 960, 540
	marginL, marginR, mB = 80, 30, 60
)

// palette: colour-blind-safe (Okabe-Ito).
var palette = []string{"#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9"}

// niceTicks returns about n round tick positions covering [lo, hi].
func niceTicks(lo, hi float64, n int) (ticks []float64, nlo, nhi float64) {
	if !(hi > lo) {
		hi = lo + 1
	}
	raw := (hi - lo) / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	nlo = math.Floor(lo/step) * step
	nhi = math.Ceil(hi/step) * step
	for v := nlo; v <= nhi+step/2; v += step {
		ticks = append(ticks, v)
	}
	return ticks, nlo, nhi
}

func fmtTick(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) < 1e9 {
		return strconv.FormatInt(int64(v), 10)
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
}

// write renders c as SVG.
func (c *chart) write(w io.Writer) error {
	bw := bufio.NewWriter(w)
	xmin, xmax := math.Inf(1), math.Inf(-1)
	ymax := 0.0
	for _, s := range c.series {
		for i := range s.xs {
			xmin, xmax = math.Min(xmin, s.xs[i]), math.Max(xmax, s.xs[i])
			ymax = math.Max(ymax, s.ys[i])
		}
	}
	if math.IsInf(xmin, 1) {
		xmin, xmax = 0, 1
	}
	if c.xFromZero {
		xmin = math.Min(xmin, 0)
	}
	var xt []tick
	if c.xTicks != nil {
		xt = c.xTicks
		for _, t := range xt {
			xmin, xmax = math.Min(xmin, t.at), math.Max(xmax, t.at)
		}
	} else {
		vals, lo, hi := niceTicks(xmin, xmax, 10)
		xmin, xmax = lo, hi
		for _, v := range vals {
			xt = append(xt, tick{v, fmtTick(v)})
		}
	}
	if xmax <= xmin {
		xmax = xmin + 1
	}
	yvals, _, yhi := niceTicks(0, ymax, 8)
	ymax = yhi

	pw := float64(plotW - marginL - marginR)
	// The header grows with the subtitle: title, its lines, the legend row.
	marginT := 66 + 16*len(c.subtitle)
	height := plotH + 16*len(c.subtitle)
	ph := float64(height - marginT - mB)
	px := func(x float64) float64 { return marginL + (x-xmin)/(xmax-xmin)*pw }
	py := func(y float64) float64 { return float64(marginT) + ph - y/ymax*ph }

	p := func(format string, a ...any) { fmt.Fprintf(bw, format, a...) }
	p(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	p(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="13">`+"\n", plotW, height, plotW, height)
	p(`<rect width="100%%" height="100%%" fill="white"/>` + "\n")
	p(`<text x="%d" y="28" font-size="18" font-weight="bold">%s</text>`+"\n", marginL, esc(c.title))
	for i, line := range c.subtitle {
		p(`<text x="%d" y="%d" font-size="12" fill="#555">%s</text>`+"\n", marginL, 48+16*i, esc(line))
	}
	// Grid and ticks.
	p(`<g stroke="#e3e3e3" stroke-width="1">` + "\n")
	for _, v := range yvals {
		p(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/>`+"\n", px(xmin), py(v), px(xmax), py(v))
	}
	for _, t := range xt {
		p(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/>`+"\n", px(t.at), py(0), px(t.at), py(ymax))
	}
	p("</g>\n")
	p(`<g fill="#333" font-size="12">` + "\n")
	for _, v := range yvals {
		p(`<text x="%.1f" y="%.1f" text-anchor="end">%s</text>`+"\n", px(xmin)-8, py(v)+4, fmtTick(v))
	}
	for _, t := range xt {
		p(`<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", px(t.at), py(0)+18, esc(t.label))
	}
	p("</g>\n")
	// Axes and their labels.
	p(`<g stroke="#333" stroke-width="1.2"><line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/><line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/></g>`+"\n",
		px(xmin), py(0), px(xmax), py(0), px(xmin), py(0), px(xmin), py(ymax))
	p(`<text x="%.1f" y="%d" text-anchor="middle" font-size="14">%s</text>`+"\n", marginL+pw/2, height-14, esc(c.xLabel))
	p(`<text transform="translate(22 %.1f) rotate(-90)" text-anchor="middle" font-size="14">%s</text>`+"\n", float64(marginT)+ph/2, esc(c.yLabel))
	// Lines.
	for _, s := range c.series {
		if len(s.xs) == 0 {
			continue
		}
		var pts strings.Builder
		for i := range s.xs {
			fmt.Fprintf(&pts, "%.1f,%.1f ", px(s.xs[i]), py(s.ys[i]))
		}
		dash := ""
		if s.dash {
			dash = ` stroke-dasharray="6 4"`
		}
		p(`<polyline fill="none" stroke="%s" stroke-width="2" stroke-linejoin="round"%s points="%s"/>`+"\n", s.color, dash, strings.TrimSpace(pts.String()))
		if s.dots || len(s.xs) == 1 {
			for i := range s.xs {
				p(`<circle cx="%.1f" cy="%.1f" r="2.5" fill="%s"/>`+"\n", px(s.xs[i]), py(s.ys[i]), s.color)
			}
		}
	}
	// Legend: one row above the plot area, where it can never hide a line.
	lx, ly := float64(marginL), float64(marginT)-12
	for _, s := range c.series {
		dash := ""
		if s.dash {
			dash = ` stroke-dasharray="6 4"`
		}
		p(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2"%s/>`+"\n", lx, ly-4, lx+26, ly-4, s.color, dash)
		p(`<text x="%.1f" y="%.1f" font-size="12">%s</text>`+"\n", lx+32, ly, esc(s.name))
		lx += 32 + 7*float64(len(s.name)) + 18 // about 7 px a character at 12 px
	}
	p("</svg>\n")
	return bw.Flush()
}

func esc(s string) string { return html.EscapeString(s) }

func runLabel(r *Report) string { return r.Target }

func loadLabel(r *Report) string {
	if r.Load.Mode == "open" {
		return fmt.Sprintf("open loop %g/s", r.Load.Rate)
	}
	return fmt.Sprintf("closed loop, %d clients", r.Load.Clients)
}

// subtitle is one line per run, then how the client spoke and the run id.
func subtitle(runs []*Report) []string {
	lines := make([]string, 0, len(runs)+1)
	for _, r := range runs {
		lines = append(lines, fmt.Sprintf("%s: %s, %.0f ok/s, p50 %s ms, p99 %s ms, max %s ms, %d errors, %d dropped",
			r.Target, loadLabel(r), r.ThroughputOK, fms(r.Latency.P50), fms(r.Latency.P99), fms(r.Latency.Max), r.Requests.Errors, r.Requests.Dropped))
	}
	r, t := runs[0], runs[0].Transport
	how := ""
	if t.Protocol != "" {
		how = fmt.Sprintf("%s/%s over %s, ", t.Protocol, t.Codec, t.HTTP)
	}
	lines = append(lines, fmt.Sprintf("%srun %s, %s, %d CPUs", how, r.RunID, r.StartedAt.Format("2006-01-02 15:04 MST"), r.Env.NumCPU))
	return lines
}

// WriteTimelinePlot draws p50 and p99 latency per second of each run.
func WriteTimelinePlot(w io.Writer, runs []*Report) error {
	c := chart{
		title:     "Latency over time (ok answers, by second of send time; in open loop, of scheduled send time)",
		subtitle:  subtitle(runs),
		xLabel:    "time since start of measured window (s)",
		yLabel:    "latency (ms)",
		xFromZero: true,
	}
	for i, r := range runs {
		var xs, p50, p99 []float64
		for _, s := range r.Timeline {
			if s.OK == 0 {
				continue
			}
			xs = append(xs, s.T+0.5)
			p50 = append(p50, s.P50)
			p99 = append(p99, s.P99)
		}
		col := palette[i%len(palette)]
		c.series = append(c.series,
			series{name: runLabel(r) + " p99", xs: xs, ys: p99, color: col, dots: len(xs) <= 60},
			series{name: runLabel(r) + " p50", xs: xs, ys: p50, color: col, dash: true, dots: len(xs) <= 60})
	}
	return c.write(w)
}

// pctX places percentile p (0..100) on the HDR axis: log10(1/(1-p)).
func pctX(p float64) float64 {
	q := p / 100
	if q >= 1 {
		q = 1 - 1e-7
	}
	return -math.Log10(1 - q)
}

// WritePercentilePlot draws latency by percentile, HdrHistogram style: the
// x axis stretches the tail (90%, 99%, 99.9% ... evenly spaced).
func WritePercentilePlot(w io.Writer, runs []*Report) error {
	c := chart{
		title:    "Latency by percentile (ok answers)",
		subtitle: subtitle(runs),
		xLabel:   "percentile (log scale of 1/(1-p))",
		yLabel:   "latency (ms)",
	}
	top := 0.0
	for i, r := range runs {
		var xs, ys []float64
		for _, pt := range r.Percentiles {
			if pt.Percentile >= 100 {
				continue // the max has no place on this axis; it is in the legend
			}
			xs = append(xs, pctX(pt.Percentile))
			ys = append(ys, pt.Latency)
			top = math.Max(top, pctX(pt.Percentile))
		}
		c.series = append(c.series, series{
			name: fmt.Sprintf("%s, max %s ms", runLabel(r), fms(r.Latency.Max)),
			xs:   xs, ys: ys, color: palette[i%len(palette)],
		})
	}
	for _, t := range []struct {
		p     float64
		label string
	}{{0, "0%"}, {50, "50%"}, {90, "90%"}, {99, "99%"}, {99.9, "99.9%"}, {99.99, "99.99%"}, {99.999, "99.999%"}, {99.9999, "99.9999%"}} {
		x := pctX(t.p)
		if x > top+1e-9 && len(c.xTicks) > 1 {
			c.xTicks = append(c.xTicks, tick{x, t.label})
			break // one tick past the data closes the axis
		}
		c.xTicks = append(c.xTicks, tick{x, t.label})
	}
	return c.write(w)
}
