package picker

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"google.golang.org/grpc/balancer"

	"github.com/etcdlb/etcdlb/internal/poll"
	"github.com/etcdlb/etcdlb/internal/workers"
)

// fixedPicker is an endpoint's own picker: it returns one SubConn.
type fixedPicker struct{ sc balancer.SubConn }

func (p fixedPicker) Pick(balancer.PickInfo) (balancer.PickResult, error) {
	return balancer.PickResult{SubConn: p.sc}, nil
}

// fakeSubConn only identifies an endpoint.
type fakeSubConn struct {
	balancer.SubConn
	id int
}

// endpoints returns one Endpoint per weight, each with its own SubConn and
// in-flight counter, Fixed.
func endpoints(weights ...uint32) []Endpoint {
	eps := make([]Endpoint, len(weights))
	for i, w := range weights {
		c := new(Counters)
		eps[i] = Endpoint{Picker: fixedPicker{&fakeSubConn{id: i}}, Weight: w, Counters: c, Done: c.Done, Fixed: true}
	}
	return eps
}

// picked returns the index of the endpoint a pick landed on. It stops the
// test on an error: call it from the test's goroutine only, and pickIndex
// from others.
func picked(t testing.TB, p balancer.Picker) (int, balancer.PickResult) {
	t.Helper()
	i, r, err := pickIndex(p)
	if err != nil {
		t.Fatal(err)
	}
	return i, r
}

// pickIndex returns the index of the endpoint a pick landed on, or the
// pick's error.
func pickIndex(p balancer.Picker) (int, balancer.PickResult, error) {
	r, err := p.Pick(balancer.PickInfo{})
	if err != nil {
		return 0, r, fmt.Errorf("Pick: %v", err)
	}
	return r.SubConn.(*fakeSubConn).id, r, nil
}

func TestScheduleIsExactAndSmooth(t *testing.T) {
	for _, weights := range [][]uint32{
		{1, 2, 3},
		{1, 1, 2, 4},
		{10, 1},
		{100, 1, 1},
		{7, 5, 3, 2},
		{3, 3, 3},
		{1, 0, 2},
		{1_000_000, 999_999, 3},
	} {
		t.Run(fmt.Sprint(weights), func(t *testing.T) {
			order := schedule(weights)
			var sum, heaviest uint64
			for _, w := range weights {
				sum += uint64(w)
				heaviest = max(heaviest, uint64(w))
			}
			counts := slotCounts(weights)
			if counts == nil {
				if order != nil {
					t.Fatalf("equal weights: got a schedule of %d, want nil (round robin)", len(order))
				}
				return
			}
			// Exact: each endpoint appears exactly its count per cycle, and
			// the counts are the weights' proportions (exactly, when the
			// reduced weights fit in a cycle).
			got := make([]uint64, len(weights))
			for _, i := range order {
				got[i]++
			}
			for i, w := range weights {
				if got[i] != counts[i] {
					t.Errorf("endpoint %d appears %d times per cycle, want %d", i, got[i], counts[i])
				}
				if share, want := float64(got[i])/float64(len(order)), float64(w)/float64(sum); math.Abs(share-want) > 1e-4 {
					t.Errorf("endpoint %d share %.6f, want %.6f", i, share, want)
				}
			}
			// Smooth: the heaviest endpoint's longest run of consecutive
			// picks, around the cycle, is bounded by how much heavier it is
			// than all the others together.
			hi := 0
			for i := range counts {
				if counts[i] > counts[hi] {
					hi = i
				}
			}
			others := uint64(len(order)) - counts[hi]
			bound := int((counts[hi]+others-1)/others) + 1
			if run := longestRun(order, uint32(hi)); run > bound {
				t.Errorf("heaviest endpoint's longest run %d, want at most %d (order %v)", run, bound, head(order))
			}
		})
	}
}

func head(order []uint32) []uint32 { return order[:min(len(order), 40)] }

// longestRun is the longest run of consecutive i in order, read as a cycle.
func longestRun(order []uint32, i uint32) int {
	best, run := 0, 0
	for k := range 2 * len(order) {
		if order[k%len(order)] == i {
			run++
			best = max(best, run)
		} else {
			run = 0
		}
	}
	return min(best, len(order))
}

func TestScheduleScalesHugeWeightSums(t *testing.T) {
	weights := make([]uint32, 1000)
	for i := range weights {
		weights[i] = 999_000 + uint32(i) // pairwise coprime-ish: the gcd is 1
	}
	weights[0] = 1 // a tiny weight still gets a slot
	order := schedule(weights)
	if limit := maxScheduleLength(len(weights)); len(order) > limit+len(weights) {
		t.Fatalf("schedule of %d entries, want about %d at most", len(order), limit)
	}
	got := make([]int, len(weights))
	for _, i := range order {
		got[i]++
	}
	if got[0] != 1 {
		t.Errorf("tiny weight got %d slots, want 1", got[0])
	}
}

// TestWeightedPickerFollowsSchedule checks the picks of one goroutine, which
// stays on one stripe, against exact shares over whole cycles.
func TestWeightedPickerFollowsSchedule(t *testing.T) {
	weights := []uint32{1, 2, 3}
	p := newWeighted(endpoints(weights...), counting{})
	const cycles = 1000
	got := make([]int, len(weights))
	for range 6 * cycles {
		i, _ := picked(t, p)
		got[i]++
	}
	for i, w := range weights {
		if want := int(w) * cycles; got[i] != want {
			t.Errorf("endpoint %d: %d picks, want exactly %d", i, got[i], want)
		}
	}
}

func TestRoundRobinPicksInTurn(t *testing.T) {
	p := newRoundRobin(endpoints(5, 1, 0), counting{}) // weights are ignored
	first, _ := picked(t, p)
	for k := 1; k < 30; k++ {
		i, _ := picked(t, p)
		if want := (first + k) % 3; i != want {
			t.Fatalf("pick %d went to %d, want %d", k, i, want)
		}
	}
}

// contention counts the calls of a counting.contended.
type contention struct{ reports atomic.Int64 }

func (c *contention) report(balancer.DoneInfo) { c.reports.Add(1) }

// TestOneGoroutineReportsNoContention checks that a goroutine picking alone
// on a serial picker is never told that another core picks.
func TestOneGoroutineReportsNoContention(t *testing.T) {
	var c contention
	eps := endpoints(1, 1, 1)
	for i := range eps {
		eps[i].Done = nil // round robin's endpoints have no Done of their own
	}
	for name, p := range map[string]balancer.Picker{
		"round_robin": newRoundRobin(eps, counting{contended: c.report}),
		"weighted":    newWeighted(endpoints(1, 2, 3), counting{contended: c.report}),
	} {
		for range 100_000 {
			if _, r := picked(t, p); r.Done != nil {
				r.Done(balancer.DoneInfo{})
			}
		}
		if n := c.reports.Load(); n != 0 {
			t.Errorf("%s: one goroutine picking reported contention %d times", name, n)
		}
	}
}

// TestConcurrentPicksReportContention checks that goroutines picking at
// once on a serial picker are reported, through the Done of a pick whose
// result had none, and that a result with a Done of its own keeps it.
func TestConcurrentPicksReportContention(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		t.Skip("needs two cores picking at once")
	}
	bare, bareWeighted := endpoints(1, 1, 1), endpoints(1, 2, 3)
	for i := range bare {
		bare[i].Done, bareWeighted[i].Done = nil, nil
	}
	for name, tc := range map[string]struct {
		build   func(counting) balancer.Picker
		ownDone bool
	}{
		"round_robin":          {func(c counting) balancer.Picker { return newRoundRobin(bare, c) }, false},
		"weighted":             {func(c counting) balancer.Picker { return newWeighted(bareWeighted, c) }, false},
		"weighted_own_done":    {func(c counting) balancer.Picker { return newWeighted(endpoints(1, 2, 3), c) }, true},
		"round_robin_own_done": {func(c counting) balancer.Picker { return newRoundRobin(endpoints(1, 1, 1), c) }, true},
	} {
		t.Run(name, func(t *testing.T) {
			var c contention
			p := tc.build(counting{contended: c.report})
			stop := workers.Start(2, func() bool {
				_, r, err := pickIndex(p)
				if err != nil {
					t.Error(err)
					return false
				}
				if r.Done != nil {
					r.Done(balancer.DoneInfo{})
				}
				return true
			})
			if tc.ownDone {
				// Every result has the endpoint's Done: it must stay, and
				// the contention goes unreported. Pick for a moment (a
				// window to pick in, not a wait for an event).
				time.Sleep(200 * time.Millisecond)
				stop()
				if n := c.reports.Load(); n != 0 {
					t.Errorf("contention reported %d times through results that have a Done of their own", n)
				}
				return
			}
			reported := poll.Until(10*time.Second, func() bool { return c.reports.Load() > 0 })
			stop()
			if !reported {
				t.Error("two goroutines picked for 10 s and no contention was reported")
			}
		})
	}
}

// TestConcurrentPicksStayNearExact checks the bound the sequences promise:
// with any number of goroutines, each endpoint's count is within one cycle
// per counter of its exact share.
func TestConcurrentPicksStayNearExact(t *testing.T) {
	weights := []uint32{1, 2, 3, 4}
	for _, striped := range []bool{false, true} {
		p := newWeighted(endpoints(weights...), counting{striped: striped}).(*cyclePicker)
		const goroutines, picks = 8, 20000
		counts := make([][]int, goroutines)
		var wg sync.WaitGroup
		for g := range goroutines {
			counts[g] = make([]int, len(weights))
			wg.Go(func() {
				for range picks {
					i, _, err := pickIndex(p)
					if err != nil {
						t.Error(err)
						return
					}
					counts[g][i]++
				}
			})
		}
		wg.Wait()
		total := float64(goroutines * picks)
		slack := float64(max(1, len(p.seq.stripes)) * len(p.order))
		for i, w := range weights {
			var n int
			for g := range goroutines {
				n += counts[g][i]
			}
			if want := total * float64(w) / 10; math.Abs(float64(n)-want) > slack {
				t.Errorf("striped %v: endpoint %d: %d picks, want %.0f ± %.0f", striped, i, n, want, slack)
			}
		}
	}
}

func TestLeastInflightAvoidsBusyEndpoints(t *testing.T) {
	for _, n := range []int{2, 3, 50} {
		t.Run(fmt.Sprint("n=", n), func(t *testing.T) {
			weights := make([]uint32, n)
			for i := range weights {
				weights[i] = 1
			}
			eps := endpoints(weights...)
			// Endpoint 0 holds many calls; it must get no new one while
			// another endpoint is idle (sampling sees it only against an
			// endpoint with fewer).
			eps[0].Counters.inflight.Store(100)
			p := newLeastInflight(eps, 2)
			for range 1000 {
				i, r := picked(t, p)
				if i == 0 {
					t.Fatal("picked the endpoint with 100 calls in flight")
				}
				r.Done(balancer.DoneInfo{})
			}
			for i := 1; i < n; i++ {
				if got := eps[i].Counters.Inflight(); got != 0 {
					t.Errorf("endpoint %d has %d in flight after every Done, want 0", i, got)
				}
			}
		})
	}
}

func TestLeastInflightWeighsInflight(t *testing.T) {
	// Endpoint 1 has weight 4: with 3 in flight it is less loaded than
	// endpoint 0 with 1 in flight and weight 1.
	eps := endpoints(1, 4)
	eps[0].Counters.inflight.Store(1)
	eps[1].Counters.inflight.Store(3)
	p := newLeastInflight(eps, 2)
	if i, _ := picked(t, p); i != 1 {
		t.Fatalf("picked endpoint %d, want 1 (3 in flight / weight 4 < 1 / 1)", i)
	}
	if got := eps[1].Counters.Inflight(); got != 4 {
		t.Errorf("endpoint 1 in flight %d after a pick, want 4", got)
	}
}

// TestLeastInflightSpreadsEvenly holds every picked call open: the counts
// must stay level, within one of each other for a full scan.
func TestLeastInflightSpreadsEvenly(t *testing.T) {
	eps := endpoints(1, 1, 1)
	p := newLeastInflight(eps, 3)
	for range 300 {
		picked(t, p)
	}
	for i := range eps {
		if got := eps[i].Counters.Inflight(); got != 100 {
			t.Errorf("endpoint %d in flight %d, want 100", i, got)
		}
	}
}

func TestChildErrorIsReturned(t *testing.T) {
	want := errors.New("child not ready")
	eps := endpoints(1)
	eps[0].Picker = errPicker{want}
	for _, p := range []balancer.Picker{newRoundRobin(eps, counting{}), newWeighted(eps, counting{striped: true}), newLeastInflight(eps, 2)} {
		if _, err := p.Pick(balancer.PickInfo{}); err != want {
			t.Errorf("%T: got %v, want %v", p, err, want)
		}
	}
	if got := eps[0].Counters.Inflight(); got != 0 {
		t.Errorf("a failed pick left %d in flight, want 0", got)
	}
}

type errPicker struct{ err error }

func (p errPicker) Pick(balancer.PickInfo) (balancer.PickResult, error) {
	return balancer.PickResult{}, p.err
}

// countingPicker counts its picks.
type countingPicker struct {
	fixedPicker
	picks *atomic.Int64
}

func (p countingPicker) Pick(info balancer.PickInfo) (balancer.PickResult, error) {
	p.picks.Add(1)
	return p.fixedPicker.Pick(info)
}

// TestFixedChildIsAskedOnce checks that a Fixed endpoint's picker is asked
// once, when the picker is built, and that its result and the endpoint's
// Done are what every pick returns; and that one not Fixed is asked on
// every pick.
func TestFixedChildIsAskedOnce(t *testing.T) {
	for _, fixed := range []bool{true, false} {
		for name, build := range map[string]func([]Endpoint) balancer.Picker{
			"round_robin": func(eps []Endpoint) balancer.Picker { return newRoundRobin(eps, counting{}) },
			"round_robin_striped": func(eps []Endpoint) balancer.Picker {
				return newRoundRobin(eps, counting{striped: true})
			},
			"weighted":       func(eps []Endpoint) balancer.Picker { return newWeighted(eps, counting{}) },
			"least_inflight": func(eps []Endpoint) balancer.Picker { return newLeastInflight(eps, 2) },
		} {
			eps := endpoints(1, 2, 3)
			var calls atomic.Int64
			for i := range eps {
				eps[i].Picker = countingPicker{eps[i].Picker.(fixedPicker), &calls}
				eps[i].Fixed = fixed
			}
			p := build(eps)
			built := calls.Load()
			const picks = 30
			for range picks {
				i, r := picked(t, p)
				if r.Done == nil {
					t.Fatalf("%s, fixed %v: pick of endpoint %d has no Done", name, fixed, i)
				}
				// The endpoint's own Done runs: it is the counter's.
				before := eps[i].Counters.Inflight()
				r.Done(balancer.DoneInfo{})
				if n := eps[i].Counters.Inflight(); n != before-1 {
					t.Fatalf("%s, fixed %v: Done took endpoint %d from %d to %d in flight", name, fixed, i, before, n)
				}
			}
			want := int64(picks)
			if fixed {
				want = 0
			}
			if got := calls.Load() - built; got != want {
				t.Errorf("%s, fixed %v: %d calls to the children's pickers in %d picks, want %d", name, fixed, got, picks, want)
			}
		}
	}
}

func TestPickAllocatesNothing(t *testing.T) {
	eps := endpoints(1, 2, 3, 4, 5)
	notFixed := append([]Endpoint(nil), eps...)
	for i := range notFixed {
		notFixed[i].Fixed = false
	}
	for name, p := range map[string]balancer.Picker{
		"round_robin":              newRoundRobin(eps, counting{}),
		"round_robin_striped":      newRoundRobin(eps, counting{striped: true}),
		"round_robin_not_fixed":    newRoundRobin(notFixed, counting{}),
		"weighted":                 newWeighted(eps, counting{}),
		"weighted_striped":         newWeighted(eps, counting{striped: true}),
		"weighted_not_fixed":       newWeighted(notFixed, counting{}),
		"least_inflight":           newLeastInflight(eps, 2),
		"least_inflight_not_fixed": newLeastInflight(notFixed, 2),
		"least_inflight_scan":      newLeastInflight(eps[:2], 2),
	} {
		allocs := testing.AllocsPerRun(1000, func() {
			r, _ := p.Pick(balancer.PickInfo{})
			if r.Done != nil {
				r.Done(balancer.DoneInfo{})
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per Pick+Done, want 0", name, allocs)
		}
	}
}

// TestScheduleRandomWeights checks exactness and smoothness on many random
// weight vectors, from a fixed seed so that a failure reproduces.
func TestScheduleRandomWeights(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		weights := make([]uint32, 1+rng.IntN(12))
		for i := range weights {
			weights[i] = uint32(rng.IntN(20))
		}
		if rng.IntN(4) == 0 {
			weights[0] = uint32(rng.IntN(500))
		}
		counts := slotCounts(weights)
		order := schedule(weights)
		if counts == nil {
			continue
		}
		got := make([]uint64, len(weights))
		for _, i := range order {
			got[i]++
		}
		hi := 0
		for i := range counts {
			if got[i] != counts[i] {
				t.Fatalf("weights %v: endpoint %d appears %d times, want %d", weights, i, got[i], counts[i])
			}
			if counts[i] > counts[hi] {
				hi = i
			}
		}
		others := uint64(len(order)) - counts[hi]
		if others == 0 {
			continue
		}
		bound := int((counts[hi]+others-1)/others) + 1
		if run := longestRun(order, uint32(hi)); run > bound {
			t.Fatalf("weights %v: heaviest's longest run %d, want at most %d; order %v", weights, run, bound, head(order))
		}
	}
}

// TestPicksAreCountedFromTheSequence checks the per-endpoint counts worked
// out from a cycle picker's stripes against the picks actually made, from
// several goroutines.
func TestPicksAreCountedFromTheSequence(t *testing.T) {
	for name, p := range map[string]balancer.Picker{
		"round_robin":         newRoundRobin(endpoints(1, 1, 1), counting{}),
		"round_robin_striped": newRoundRobin(endpoints(1, 1, 1), counting{striped: true}),
		"weighted":            newWeighted(endpoints(1, 2, 3, 7), counting{}),
		"weighted_striped":    newWeighted(endpoints(1, 2, 3, 7), counting{striped: true}),
	} {
		t.Run(name, func(t *testing.T) {
			var mu sync.Mutex
			want := map[int]uint64{}
			var wg sync.WaitGroup
			for g := range 5 {
				wg.Go(func() {
					local := map[int]uint64{}
					for range 1000 + 37*g {
						i, _, err := pickIndex(p)
						if err != nil {
							t.Error(err)
							return
						}
						local[i]++
					}
					mu.Lock()
					for i, n := range local {
						want[i] += n
					}
					mu.Unlock()
				})
			}
			wg.Wait()
			got := map[int]uint64{}
			Picks(p, func(e *Endpoint, n uint64) {
				got[e.Picker.(fixedPicker).sc.(*fakeSubConn).id] += n
			})
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("counted %v, picked %v", got, want)
			}
		})
	}
}

// TestLeastInflightFollowsWeightsSequentially: calls that never overlap
// tie at 0 in flight; they must still be spread in proportion to the
// weights (issue 12: weights 1:2:3 got 0.34/0.34/0.32), whether the picker
// samples pairs or compares every endpoint.
func TestLeastInflightFollowsWeightsSequentially(t *testing.T) {
	for _, tc := range []struct {
		weights []uint32
		choices int
	}{
		{[]uint32{1, 2, 3}, 2},
		{[]uint32{1, 2, 3}, 3},
		{[]uint32{1, 2, 3}, 10},
		{[]uint32{5, 1, 1, 1, 1, 1}, 2},
		{[]uint32{1, 100, 7, 3, 40, 1, 1, 2, 10, 0}, 4},
	} {
		t.Run(fmt.Sprint(tc.weights, " choices=", tc.choices), func(t *testing.T) {
			eps := endpoints(tc.weights...)
			p := newLeastInflight(eps, tc.choices)
			const picks = 100_000
			got := make([]int64, len(eps))
			for range picks {
				i, r := picked(t, p)
				got[i]++
				r.Done(balancer.DoneInfo{})
			}
			var sum float64
			for _, w := range tc.weights {
				sum += float64(w)
			}
			var chi2 float64
			dof := -1
			for i, w := range tc.weights {
				want := float64(w) / sum
				share := float64(got[i]) / picks
				if math.Abs(share-want) > 0.05 {
					t.Errorf("endpoint %d (weight %d): share %.3f, want %.3f ± 0.05", i, w, share, want)
				}
				if w == 0 {
					if got[i] != 0 {
						t.Errorf("endpoint %d (weight 0) got %d picks", i, got[i])
					}
					continue
				}
				dof++
				chi2 += (float64(got[i]) - want*picks) * (float64(got[i]) - want*picks) / (want * picks)
			}
			// Chi-square's critical values at p = 1e-6, by degrees of
			// freedom: a correct picker fails once in a million runs.
			crit := map[int]float64{2: 27.6, 5: 35.9, 8: 42.7}[dof]
			if chi2 > crit {
				t.Errorf("picks %v against weights %v: chi-square %.1f > %.1f (p < 1e-6, %d degrees of freedom)",
					got, tc.weights, chi2, crit, dof)
			}
		})
	}
}

// TestLeastInflightWeightedUnderLoad holds every picked call open on
// weights 1:2:3: the calls in flight stay in proportion to the weights, and
// a busy endpoint is still avoided.
func TestLeastInflightWeightedUnderLoad(t *testing.T) {
	for _, choices := range []int{2, 3} {
		eps := endpoints(1, 2, 3)
		p := newLeastInflight(eps, choices)
		for range 600 {
			picked(t, p)
		}
		for i, want := range []int64{100, 200, 300} {
			if got := eps[i].Counters.Inflight(); got < want-3 || got > want+3 {
				t.Errorf("choices %d: endpoint %d (weight %d) in flight %d, want %d ± 3", choices, i, i+1, got, want)
			}
		}
	}
}

func TestAliasTableIsExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for range 500 {
		weights := make([]uint32, 1+rng.IntN(20))
		var sum uint64
		for i := range weights {
			weights[i] = uint32(rng.IntN(1000))
			sum += uint64(weights[i])
		}
		p := newLeastInflight(endpoints(weights...), 2).(*leastInflight)
		// Each endpoint's probability, summed over the buckets, in units
		// of 2^-32 of a bucket.
		mass := make([]float64, len(weights))
		for i, l := range p.loads {
			mass[i] += float64(l.cut)
			mass[l.alias] += float64(uint64(1)<<32 - l.cut)
		}
		for i, w := range weights {
			want := 1.0 / float64(len(weights))
			if sum > 0 {
				want = float64(w) / float64(sum)
			}
			got := mass[i] / float64(len(weights)) / (1 << 32)
			if math.Abs(got-want) > 1e-6 {
				t.Fatalf("weights %v: endpoint %d sampled with probability %v, want %v", weights, i, got, want)
			}
		}
	}
}

// TestPaddingFitsTheLines checks the sizes the padding aims at, computed
// from the size of grpc's PickResult.
func TestPaddingFitsTheLines(t *testing.T) {
	for name, size := range map[string]uintptr{
		"load":          unsafe.Sizeof(load{}),
		"leastInflight": unsafe.Sizeof(leastInflight{}) / 2,
		"cyclePicker":   unsafe.Sizeof(cyclePicker{}) / 3,
	} {
		if size != 64 {
			t.Errorf("%s is %d bytes a cache line, want 64", name, size)
		}
	}
}
