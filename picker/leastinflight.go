package picker

import (
	"math/bits"
	"math/rand/v2"
	"unsafe"

	"google.golang.org/grpc/balancer"
)

// Choice counts of LeastInflight, as grpc-go's least_request_experimental
// takes them (gRFC A48): fewer than MinChoiceCount is an error in a config,
// more than MaxChoiceCount is lowered to it.
const (
	MinChoiceCount     = 2
	MaxChoiceCount     = 10
	DefaultChoiceCount = 2
)

// LeastInflight samples ChoiceCount endpoints at random, in proportion to
// their weights, and picks the one with the fewest outstanding RPCs per unit
// of weight (the "power of two choices" when ChoiceCount is 2). With no more
// endpoints than choices it compares them all, from one sampled in
// proportion to its weight. Ties go to the first sample, so that the
// weights hold at any concurrency: calls that never overlap, which tie at 0
// in flight, are spread in proportion to the weights, as Envoy's
// least-request spreads them. It tracks Inflight: every endpoint must have
// Counters and a Done that ends the RPC (Counters.Done). ChoiceCount is
// clamped to [MinChoiceCount, MaxChoiceCount].
type LeastInflight struct{ ChoiceCount int }

// NewPicker implements Algorithm.
func (a LeastInflight) NewPicker(eps []Endpoint, _ *Shared) balancer.Picker {
	return newLeastInflight(eps, a.ChoiceCount)
}

func newLeastInflight(eps []Endpoint, choiceCount int) balancer.Picker {
	results := fixedResults(eps)
	loads := make([]load, len(eps))
	for i := range eps {
		loads[i] = load{loadFields: loadFields{counters: eps[i].Counters, weight: eps[i].Weight}}
		if results != nil {
			loads[i].result = results[i]
		}
	}
	aliasTable(loads)
	p := &leastInflight{leastInflightFields: leastInflightFields{
		loads:   isolate(loads),
		fixed:   results != nil,
		choices: min(max(choiceCount, MinChoiceCount), MaxChoiceCount),
	}}
	if !p.fixed {
		p.eps = isolate(eps)
	}
	return p
}

// leastInflight is padded to 128 bytes, as cyclePicker is: every core reads
// it on every pick.
type leastInflight struct {
	leastInflightFields
	_ [128 - unsafe.Sizeof(leastInflightFields{})]byte
}

type leastInflightFields struct {
	// loads are what a pick reads of an endpoint, on one cache line each.
	// eps is kept only when not fixed, to call the picked endpoint's picker.
	loads   []load
	eps     []Endpoint
	fixed   bool // every endpoint is Fixed: loads hold their results
	choices int
}

// load is one cache line: a sampled endpoint costs it and its counters'.
// The padding is computed from the size of grpc's PickResult; should the
// fields outgrow a line, the array length goes negative and the package
// does not compile.
type load struct {
	loadFields
	_ [64 - unsafe.Sizeof(loadFields{})]byte
}

type loadFields struct {
	counters *Counters
	weight   uint32
	// alias and cut make the loads an alias table of the weights (see
	// sample).
	alias  uint32
	cut    uint64
	result balancer.PickResult // when fixed
}

func (p *leastInflight) Pick(info balancer.PickInfo) (balancer.PickResult, error) {
	var best int
	if n := len(p.loads); n <= p.choices {
		// Few endpoints: compare them all, from a sampled start, which
		// wins ties.
		start := p.sample(rand.Uint32())
		best = start
		for k := 1; k < n; k++ {
			best = p.better(best, (start+k)%n)
		}
	} else {
		for k := 0; k < p.choices; k += 2 {
			// One 64-bit random number gives two distinct samples, so that
			// the busiest endpoint never wins a pair: i in proportion to
			// the weights, which decides when loads tie, and j uniformly
			// among the others, which only needs to be a fair rival (a
			// weighted j would cost a second table lookup, and a cache
			// line at large N).
			r := rand.Uint64()
			i := p.sample(uint32(r))
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

// sample maps a uniform 32-bit number r onto an endpoint, each in
// proportion to its weight, in O(1): Walker's alias method. r scaled by the
// number of endpoints gives a uniform endpoint i in its high 32 bits and a
// uniform fraction in its low 32; below i's cut the pick is i, above it
// i's alias. With equal weights every cut is 2^32 and no alias is taken.
func (p *leastInflight) sample(r uint32) int {
	x := uint64(r) * uint64(len(p.loads))
	i := int(x >> 32)
	// Both read before the test, so that the compiler chooses with a
	// conditional move: with unequal weights the test is a coin toss.
	l := &p.loads[i]
	alias := int(l.alias)
	if uint64(uint32(x)) >= l.cut {
		i = alias
	}
	return i
}

// aliasTable sets the loads' cut and alias from their weights (Vose's
// construction of Walker's alias table, in integers): endpoint i's bucket
// of the uniform draw keeps the fraction cut/2^32 for i and gives the rest
// to alias. All weights 0 count as equal.
func aliasTable(loads []load) {
	n := uint64(len(loads))
	var total uint64
	for i := range loads {
		total += uint64(loads[i].weight)
	}
	// Each bucket holds total; endpoint i brings weight*n of it.
	share := make([]uint64, n)
	var small, large []int
	for i := range loads {
		share[i] = uint64(loads[i].weight) * n
		if total == 0 {
			share[i] = 1
		}
		loads[i].alias, loads[i].cut = uint32(i), 1<<32
	}
	if total == 0 {
		return
	}
	for i, s := range share {
		if s < total {
			small = append(small, i)
		} else {
			large = append(large, i)
		}
	}
	for len(small) > 0 && len(large) > 0 {
		s, l := small[len(small)-1], large[len(large)-1]
		small = small[:len(small)-1]
		// s keeps share[s]/total of its bucket (share[s] < total, so the
		// quotient fits); l takes the rest from its own share.
		hi, lo := bits.Mul64(share[s], 1<<32)
		loads[s].cut, _ = bits.Div64(hi, lo, total)
		loads[s].alias = uint32(l)
		share[l] -= total - share[s]
		if share[l] < total {
			large = large[:len(large)-1]
			small = append(small, l)
		}
	}
	// What is left fills its own bucket, up to rounding.
}

// scale maps a uniform 32-bit number onto [0, n) without a division.
func scale(r uint32, n int) int { return int(uint64(r) * uint64(n) >> 32) }
