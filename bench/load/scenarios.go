package load

import (
	"context"
	"fmt"
	"math"
	"time"

	etcdlb "github.com/etcdlb/etcdlb/balancer"
	"github.com/etcdlb/etcdlb/registry"
)

// Scenarios are the six scenarios of the benchmark, at full length.
func Scenarios() []*Scenario {
	equal := func(n int, d Dist, limit int) []BackendSpec {
		bs := make([]BackendSpec, n)
		for i := range bs {
			bs[i] = BackendSpec{Name: fmt.Sprintf("b%d", i), Weight: 1, Service: d, Limit: limit}
		}
		return bs
	}
	slow := equal(4, Exponential(3*time.Millisecond), 8)
	slow[3].Service = Exponential(30 * time.Millisecond)
	weighted := []BackendSpec{
		{Name: "b0", Weight: 1, Service: Exponential(10 * time.Millisecond), Limit: 2},
		{Name: "b1", Weight: 1, Service: Exponential(10 * time.Millisecond), Limit: 2},
		{Name: "b2", Weight: 2, Service: Exponential(10 * time.Millisecond), Limit: 4},
		{Name: "b3", Weight: 4, Service: Exponential(10 * time.Millisecond), Limit: 8},
	}
	zones := []BackendSpec{
		{Name: "a1", Zone: "a", Weight: 1, Service: Fixed(2 * time.Millisecond)},
		{Name: "a2", Zone: "a", Weight: 1, Service: Fixed(2 * time.Millisecond)},
		{Name: "b1", Zone: "b", Weight: 1, Service: Fixed(2 * time.Millisecond)},
		{Name: "b2", Zone: "b", Weight: 1, Service: Fixed(2 * time.Millisecond)},
	}
	return []*Scenario{{
		ID:          "1-equal",
		Title:       "Four equal fast backends (overhead)",
		Backends:    equal(4, Fixed(0), 0),
		Concurrency: 32,
		Duration:    time.Second,
		Rounds:      3,
	}, {
		ID:       "2-slow",
		Title:    "Four backends, one 10x slower",
		Backends: slow,
		Rate:     1000,
		Duration: 6 * time.Second,
	}, {
		ID:       "3-weights",
		Title:    "Weights 1:1:2:4, capacity in proportion",
		Backends: weighted,
		Rate:     1000,
		Duration: 6 * time.Second,
		Measure:  measureWeights,
	}, {
		ID:           "4-zones",
		Title:        "Two zones, client in zone a; zone a stopped and restarted",
		Backends:     zones,
		Concurrency:  32,
		Duration:     6 * time.Second,
		LocalZone:    "a",
		WaitForReady: true,
		Events: []Event{
			{At: 0.3, Name: "zone a stopped", Do: func(_ context.Context, e *Env) error {
				for _, b := range e.Backends[:2] {
					b.GracefulStop()
				}
				return nil
			}},
			{At: 0.6, Name: "zone a restarted", Do: func(_ context.Context, e *Env) error {
				for _, b := range e.Backends[:2] {
					if err := b.Restart(); err != nil {
						return err
					}
				}
				return nil
			}},
		},
		Measure: measureZones,
	}, {
		ID:          "5-kill",
		Title:       "A backend killed mid-run",
		Backends:    equal(4, Exponential(5*time.Millisecond), 0),
		Concurrency: 32,
		Duration:    4 * time.Second,
		Events: []Event{{At: 0.4, Name: "b0 killed", Do: func(_ context.Context, e *Env) error {
			b := e.Backends[0]
			done := b.Done()
			// Calls sent to b0 before Stop returned (its connections
			// closed) that ended after Stop began were in flight on it
			// when it was killed; the client counts them as they end.
			e.KillStarted(b.Addr)
			b.Stop()
			e.KillDone()
			// Calls that had reached b0's handler and not ended.
			e.Note("inflight", float64(b.Calls()-done))
			return nil
		}}},
		TrackKill: true,
		Measure:   measureKill,
	}, {
		ID:          "6-etcd-weight",
		Title:       "A weight changed in etcd mid-run (b0: 1 → 5)",
		Backends:    equal(4, Fixed(2*time.Millisecond), 0),
		Concurrency: 32,
		Duration:    4 * time.Second,
		Etcd:        true,
		Events: []Event{{At: 0.4, Name: "etcd: b0 weight 5", Do: func(ctx context.Context, e *Env) error {
			return registry.SetOverride(ctx, e.Etcd, e.Service, e.Backends[0].Addr, 5)
		}}},
		Measure: measureWeightChange,
	}}
}

// Scenario returns the scenario with id, or nil.
func ScenarioByID(id string) *Scenario {
	for _, s := range Scenarios() {
		if s.ID == id {
			return s
		}
	}
	return nil
}

func weightShares(specs []BackendSpec) []float64 {
	var total float64
	for _, s := range specs {
		total += float64(s.Weight)
	}
	w := make([]float64, len(specs))
	for i, s := range specs {
		w[i] = float64(s.Weight) / total
	}
	return w
}

func measureWeights(r *Result) []Metric {
	want := weightShares(r.Scenario.Backends)
	var worst float64
	for i, s := range r.Shares() {
		worst = max(worst, math.Abs(s-want[i]))
	}
	return []Metric{{Name: "max share error", Value: 100 * worst, Unit: "points"}}
}

// share returns the share of rows among all rows over windows [from, to).
func share(tl *Timeline, rows []int, from, to int) (float64, int64) {
	var in, all int64
	for i := 0; i < tl.Rows(); i++ {
		n := tl.Sum(i, from, to)
		all += n
		for _, r := range rows {
			if r == i {
				in += n
			}
		}
	}
	if all == 0 {
		return 0, 0
	}
	return float64(in) / float64(all), all
}

// firstStable returns the first window w ≥ from where the share of rows in
// [w-width+1, w] satisfies ok for hold windows running, or -1.
func firstStable(tl *Timeline, rows []int, from, width, hold int, ok func(float64) bool) int {
	run := 0
	for w := from; w < tl.Windows(); w++ {
		s, n := share(tl, rows, w-width+1, w+1)
		if n > 0 && ok(s) {
			run++
			if run == hold {
				return w - hold + 1
			}
		} else {
			run = 0
		}
	}
	return -1
}

func measureZones(r *Result) []Metric {
	tl := r.Timeline
	stop, back := tl.WindowOf(r.EventAt[0]), tl.WindowOf(r.EventAt[1])
	pre, _ := share(tl, []int{0, 1}, 0, stop)
	failed := r.Errors.Sum(0, stop, back+tl.WindowOf(time.Second)+1)
	ms := []Metric{
		{Name: "failed during outage", Value: float64(failed), Unit: "calls", Note: "stop to restart + 1 s"},
	}
	// Back: a 50 ms window with zone a's pre-outage share (90% of it),
	// held for 100 ms; measured to that window's end, so at most 10 ms late.
	w := firstStable(tl, []int{0, 1}, back, 5, 10, func(s float64) bool { return s >= 0.9*pre })
	if w < 0 {
		return append(ms, Metric{Name: "back in zone a", Note: "never"})
	}
	end := time.Duration(w+1) * tl.Window
	return append(ms, Metric{Name: "back in zone a", Value: float64((end - r.EventAt[1]).Milliseconds()), Unit: "ms",
		Note: fmt.Sprintf("to %.0f%% of calls, its share before", 90*pre)})
}

func measureKill(r *Result) []Metric {
	server, _ := r.Env.note("inflight")
	return []Metric{
		{Name: "failed", Value: float64(r.Stats.Errors.Load()), Unit: "calls"},
		{Name: "in flight on b0 when killed", Value: float64(r.Env.onKilled.Load()), Unit: "calls",
			Note: fmt.Sprintf("sent to b0 before, ended after; %.0f had reached its handler", server)},
	}
}

func measureWeightChange(r *Result) []Metric {
	if r.Policy.Weights == etcdlb.WeightsIgnored {
		return []Metric{{Name: "new split", Note: "n/a, the policy ignores weights"}}
	}
	tl := r.Timeline
	write := tl.WindowOf(r.EventAt[0])
	end := tl.WindowOf(r.Span)
	target := 5.0 / 8
	what := fmt.Sprintf("b0 within 5 points of %.1f%%, its weight share", 100*target)
	if r.Policy.Weights == etcdlb.WeightsSampled {
		// Least-inflight's two choices out of four: b0 is in half the
		// sampled pairs, so it cannot pass 50%; the target is where it
		// settled.
		target, _ = share(tl, []int{0}, (write+end)/2, end)
		what = fmt.Sprintf("b0 within 5 points of %.1f%%, its share over the second half after the write", 100*target)
	}
	// A 20 ms window within 5 points of the target, held for 50 ms;
	// measured to that window's end, so at most 10 ms late.
	w := firstStable(tl, []int{0}, write, 2, 5, func(s float64) bool { return math.Abs(s-target) <= 0.05 })
	if w < 0 {
		return []Metric{{Name: "new split", Note: "never reached: " + what}}
	}
	at := time.Duration(w+1) * tl.Window
	return []Metric{{Name: "new split reached", Value: float64((at - r.EventAt[0]).Milliseconds()), Unit: "ms",
		Note: what + ", from the etcd write"}}
}
