package picker

import (
	"math/rand/v2"

	"google.golang.org/grpc/balancer"
)

// Choice counts that NewLeastInflight accepts.
const (
	MinChoiceCount     = 2
	MaxChoiceCount     = 10
	DefaultChoiceCount = 2
)

// NewLeastInflight returns a picker that samples choiceCount endpoints at
// random and picks the one with the fewest outstanding RPCs per unit of
// weight (the "power of two choices" when choiceCount is 2). With no more
// endpoints than choices it compares them all. Every endpoint must have an
// Counters and a Done that ends the RPC (Counters.Done); eps must not be
// empty.
// choiceCount is clamped to [MinChoiceCount, MaxChoiceCount].
func NewLeastInflight(eps []Endpoint, choiceCount int) balancer.Picker {
	results := fixedResults(eps)
	loads := make([]load, len(eps))
	for i := range eps {
		loads[i] = load{counters: eps[i].Counters, weight: eps[i].Weight}
		if results != nil {
			loads[i].result = results[i]
		}
	}
	p := &leastInflight{
		loads:   isolate(loads),
		fixed:   results != nil,
		choices: min(max(choiceCount, MinChoiceCount), MaxChoiceCount),
	}
	if !p.fixed {
		p.eps = isolate(eps)
	}
	return p
}

// leastInflight is padded to 128 bytes, as cyclePicker is: every core reads
// it on every pick.
type leastInflight struct {
	// loads are what a pick reads of an endpoint, on one cache line each.
	// eps is kept only when not fixed, to call the picked endpoint's picker.
	loads   []load
	eps     []Endpoint
	fixed   bool // every endpoint is Fixed: loads hold their results
	choices int
	_       [128 - 64]byte
}

// load is one cache line: a sampled endpoint costs it and its counters'.
type load struct {
	counters *Counters
	weight   uint32
	result   balancer.PickResult // when fixed
	_        [64 - 48]byte
}

func (p *leastInflight) Pick(info balancer.PickInfo) (balancer.PickResult, error) {
	var best int
	if n := len(p.loads); n <= p.choices {
		// Few endpoints: compare them all, from a random start so that ties
		// do not always go to the first.
		start := rand.IntN(n)
		best = start
		for k := 1; k < n; k++ {
			best = p.better(best, (start+k)%n)
		}
	} else {
		for k := 0; k < p.choices; k += 2 {
			// One 64-bit random number gives two distinct samples, so that
			// the busiest endpoint never wins a pair.
			r := rand.Uint64()
			i := scale(uint32(r), n)
			if k == 0 {
				best = i
			} else {
				best = p.better(best, i)
			}
			if k+1 < p.choices {
				// j skips i without a branch: at small N, j >= i is a
				// coin toss that the CPU mispredicts half the time
				// (5 ns a pick at N = 3). i, j < 2^31, so i-j-1 is
				// negative exactly when j >= i.
				j := scale(uint32(r>>32), n-1)
				j += int(uint64(i-j-1) >> 63)
				best = p.better(best, j)
			}
		}
	}
	if l := &p.loads[best]; p.fixed {
		l.counters.start()
		return l.result, nil
	}
	e := &p.eps[best]
	r, err := pickEndpoint(e, info)
	if err == nil {
		e.Counters.start()
	}
	return r, err
}

// better returns whichever of endpoints a and b has fewer RPCs in flight
// per unit of weight. inflight/weight is compared by cross-multiplying.
func (p *leastInflight) better(a, b int) int {
	la, lb := &p.loads[a], &p.loads[b]
	if lb.counters.Inflight()*int64(la.weight) < la.counters.Inflight()*int64(lb.weight) {
		return b
	}
	return a
}

// scale maps a uniform 32-bit number onto [0, n) without a division.
func scale(r uint32, n int) int { return int(uint64(r) * uint64(n) >> 32) }
