package load

import (
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	etcdlb "github.com/etcdlb/etcdlb/balancer"
)

// Results are the runs of a benchmark, in the order they ran.
type Results []*Result

// Find returns the run of scenario id with policy, or nil.
func (rs Results) Find(id, policy string) *Result {
	for _, r := range rs {
		if r.Scenario.ID == id && r.Policy.Name == policy {
			return r
		}
	}
	return nil
}

// Scenarios returns the scenarios run, in order.
func (rs Results) Scenarios() []*Scenario {
	var out []*Scenario
	seen := map[string]bool{}
	for _, r := range rs {
		if !seen[r.Scenario.ID] {
			seen[r.Scenario.ID] = true
			out = append(out, r.Scenario)
		}
	}
	return out
}

func ms(d time.Duration) string {
	v := float64(d) / 1e6
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

// Describe says what a scenario's backends and load are.
func (s *Scenario) Describe() string {
	var bs []string
	for _, b := range s.Backends {
		d := fmt.Sprintf("%s: %v", b.Name, b.Service)
		if b.Limit > 0 {
			d += fmt.Sprintf(", %d at once", b.Limit)
		}
		if b.Weight != 1 {
			d += fmt.Sprintf(", weight %d", b.Weight)
		}
		if b.Zone != "" {
			d += ", zone " + b.Zone
		}
		bs = append(bs, d)
	}
	out := "Backends: " + strings.Join(bs, "; ") + ". Load: " + s.Load()
	if s.Rounds > 1 {
		out += fmt.Sprintf(" in each of %d rounds (every policy in turn in each round), added up", s.Rounds)
	}
	if s.WaitForReady {
		out += ", calls with wait-for-ready"
	}
	if s.LocalZone != "" {
		out += fmt.Sprintf(". etcdlb's policies have `localZone: %q`; grpc-go's policies ignore zones", s.LocalZone)
	}
	if s.Etcd {
		out += ". Backends registered with `registry.Register` in the embedded etcd, resolved by `resolver.NewBuilder`; grpc-go's policies ignore weights"
	}
	for _, e := range s.Events {
		out += fmt.Sprintf(". At %.0f%%: %s", 100*e.At, e.Name)
	}
	return out + "."
}

// WriteMarkdown writes one table per scenario, then the goals.
func WriteMarkdown(w io.Writer, rs Results, svgPrefix string) {
	for _, sc := range rs.Scenarios() {
		fmt.Fprintf(w, "### %s: %s\n\n%s\n\n", sc.ID, sc.Title, sc.Describe())
		var names []string
		for _, b := range sc.Backends {
			names = append(names, b.Name)
		}
		fmt.Fprintf(w, "| policy | calls/s | p50 ms | p90 ms | p99 ms | p99.9 ms | errors | share %% %s | notes |\n",
			strings.Join(names, " / "))
		fmt.Fprintln(w, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |")
		for _, r := range rs {
			if r.Scenario.ID != sc.ID {
				continue
			}
			h := &r.Stats.Hist
			var shares []string
			for _, s := range r.Shares() {
				shares = append(shares, fmt.Sprintf("%.1f", 100*s))
			}
			var notes []string
			for _, m := range r.Metrics {
				notes = append(notes, m.String())
			}
			fmt.Fprintf(w, "| `%s` | %.0f | %s | %s | %s | %s | %d | %s | %s |\n", r.Policy.Name, r.RPS(),
				ms(h.Quantile(0.5)), ms(h.Quantile(0.9)), ms(h.Quantile(0.99)), ms(h.Quantile(0.999)),
				r.Stats.Errors.Load(), strings.Join(shares, " / "), strings.Join(notes, "; "))
		}
		if svgPrefix != "" {
			fmt.Fprintf(w, "\n![%s](%s%s.svg)\n", sc.ID, svgPrefix, sc.ID)
		}
		fmt.Fprintln(w)
	}
	gs := Goals(rs)
	if len(gs) == 0 {
		return
	}
	fmt.Fprintln(w, "### Goals\n\n| goal | result | |\n| --- | --- | --- |")
	for _, g := range gs {
		fmt.Fprintf(w, "| %s | %s | %s |\n", g.Name, g.Status, g.Detail)
	}
	fmt.Fprintln(w)
}

// Goal is one of the benchmark's targets, checked against a run.
type Goal struct {
	Name, Status, Detail string
}

func metOrMissed(ok bool) string {
	if ok {
		return "**met**"
	}
	return "**missed**"
}

func metric(r *Result, name string) (Metric, bool) {
	if r == nil {
		return Metric{}, false
	}
	for _, m := range r.Metrics {
		if m.Name == name {
			return m, true
		}
	}
	return Metric{}, false
}

// Goals checks the targets against the runs there are.
func Goals(rs Results) []Goal {
	var gs []Goal
	p99 := func(r *Result) time.Duration { return r.Stats.Hist.Quantile(0.99) }
	for _, p := range Policies {
		if li, rr, lr := rs.Find("2-slow", p.Name), rs.Find("2-slow", "round_robin"), rs.Find("2-slow", "least_request_experimental"); p.CountsInflight && li != nil && rr != nil && lr != nil {
			ok := p99(li) <= p99(rr)/2 && p99(li) <= p99(lr)
			gs = append(gs, Goal{"2: " + strings.TrimPrefix(p.Name, "etcdlb_") + " p99 ≤ ½ round_robin's, ≤ least_request's", metOrMissed(ok),
				fmt.Sprintf("%s ms against %s and %s ms", ms(p99(li)), ms(p99(rr)), ms(p99(lr)))})
		}
	}
	for _, p := range Policies {
		if m, ok := metric(rs.Find("3-weights", p.Name), "max share error"); ok && p.Weights == etcdlb.WeightsExact {
			gs = append(gs, Goal{"3: " + p.Name + " shares within 2% of the weights'", metOrMissed(m.Value <= 2),
				fmt.Sprintf("largest difference %.2f points", m.Value)})
		}
	}
	for _, p := range Policies {
		if !p.Ours {
			continue
		}
		r := rs.Find("4-zones", p.Name)
		f, ok1 := metric(r, "failed during outage")
		b, ok2 := metric(r, "back in zone a")
		if ok1 && ok2 {
			ok := f.Value == 0 && b.Unit == "ms" && b.Value <= 1000
			gs = append(gs, Goal{"4: " + p.Name + ": no failed call, back in zone a ≤ 1 s", metOrMissed(ok),
				fmt.Sprintf("%.0f failed; %s", f.Value, b.String())})
		}
	}
	for _, p := range Policies {
		r := rs.Find("5-kill", p.Name)
		f, ok1 := metric(r, "failed")
		in, ok2 := metric(r, "in flight on b0 when killed")
		if ok1 && ok2 {
			gs = append(gs, Goal{"5: " + p.Name + ": failed ≤ in flight on the killed backend", metOrMissed(f.Value <= in.Value),
				fmt.Sprintf("%.0f failed, %.0f in flight", f.Value, in.Value)})
		}
	}
	for _, p := range Policies {
		if !p.Ours || p.Weights == etcdlb.WeightsIgnored {
			continue
		}
		name := p.Name
		if m, ok := metric(rs.Find("6-etcd-weight", name), "new split reached"); ok {
			gs = append(gs, Goal{"6: " + name + ": new split ≤ 100 ms after the etcd write", metOrMissed(m.Value <= 100), m.String()})
		} else if m, ok := metric(rs.Find("6-etcd-weight", name), "new split"); ok {
			gs = append(gs, Goal{"6: " + name + ": new split ≤ 100 ms after the etcd write", metOrMissed(false), m.String()})
		}
	}
	if rr := rs.Find("1-equal", "round_robin"); rr != nil {
		for _, p := range Policies {
			if r := rs.Find("1-equal", p.Name); p.Ours && r != nil {
				ratio := r.RPS() / rr.RPS()
				gs = append(gs, Goal{"overhead: " + p.Name + " throughput ≥ 97% of round_robin's", metOrMissed(ratio >= 0.97),
					fmt.Sprintf("%.0f against %.0f calls/s (%.1f%%)", r.RPS(), rr.RPS(), 100*ratio)})
			}
		}
	}
	return gs
}

// shareSeries returns, per backend, its share of the calls in each of
// buckets equal spans of the run.
func shareSeries(r *Result, buckets int) [][]float64 {
	tl := r.Timeline
	last := max(tl.WindowOf(r.Span), 1)
	per := max(int(math.Ceil(float64(last)/float64(buckets))), 1)
	out := make([][]float64, tl.Rows())
	for w := 0; w < last; w += per {
		var total int64
		for b := 0; b < tl.Rows(); b++ {
			total += tl.Sum(b, w, w+per)
		}
		for b := 0; b < tl.Rows(); b++ {
			v := 0.0
			if total > 0 {
				v = float64(tl.Sum(b, w, w+per)) / float64(total)
			}
			out[b] = append(out[b], v)
		}
	}
	return out
}
