package picker

import (
	"unsafe"

	"google.golang.org/grpc/balancer"
)

// NewRoundRobin returns a picker that gives each endpoint the same share of
// picks, in turn. Weights are ignored. eps must not be empty.
func NewRoundRobin(eps []Endpoint) balancer.Picker {
	if results := fixedResults(eps); results != nil {
		p := &fixedRoundRobin{}
		p.init(eps, nil, results, len(eps))
		return p
	}
	return newCyclePicker(eps, nil, len(eps))
}

// NewWeighted returns a picker that gives each endpoint a share of picks in
// proportion to its weight, interleaved smoothly (see schedule). With equal
// weights it is NewRoundRobin. eps must not be empty.
func NewWeighted(eps []Endpoint) balancer.Picker {
	weights := make([]uint32, len(eps))
	for i := range eps {
		weights[i] = eps[i].Weight
	}
	order := schedule(weights)
	if order == nil {
		return NewRoundRobin(eps)
	}
	return newCyclePicker(eps, isolate(order), len(order))
}

func newCyclePicker(eps []Endpoint, order []uint32, length int) *cyclePicker {
	p := &cyclePicker{}
	p.init(eps, order, fixedResults(eps), length)
	return p
}

func (p *cyclePicker) init(eps []Endpoint, order []uint32, results []balancer.PickResult, length int) {
	p.eps, p.order, p.results = isolate(eps), order, isolate(results)
	p.seq.init(length)
}

// cyclePicker walks a fixed cycle: the endpoints in turn, or a weighted
// schedule of their indices.
//
// Every core reads its fields on every pick: it is padded to 192 bytes, a
// size class whose objects are cache-line aligned, so that no object that
// some core writes shares its cache lines.
type cyclePicker struct {
	seq   sequence
	order []uint32 // nil: position i is endpoint i
	// results are the endpoints' pick results when all are Fixed: a pick
	// then reads 32 bytes of a dense array and calls nothing.
	results []balancer.PickResult
	eps     []Endpoint
	_       [192 - unsafe.Sizeof(sequence{}) - 3*unsafe.Sizeof([]byte(nil))]byte
}

func (p *cyclePicker) Pick(info balancer.PickInfo) (balancer.PickResult, error) {
	n := p.seq.count()
	if sampled(n) {
		p.seq.sample()
	}
	i := p.seq.position(n)
	if p.order != nil {
		i = p.order[i]
	}
	if p.results != nil {
		return p.results[i], nil
	}
	return pickEndpoint(&p.eps[i], info)
}

// fixedRoundRobin is a round robin over Fixed endpoints, the common case
// (pick_first children): its pick has no branch but the sampling one.
type fixedRoundRobin struct{ cyclePicker }

func (p *fixedRoundRobin) Pick(balancer.PickInfo) (balancer.PickResult, error) {
	n := p.seq.count()
	if sampled(n) {
		p.seq.sample()
	}
	return p.results[p.seq.position(n)], nil
}

// isolate returns s, or when it is small a copy of it in cache lines of its
// own: at least 128 bytes and a multiple of 64, which Go's allocator serves
// from line-aligned size classes (from 32 KiB up, allocations are page
// aligned anyway). Every core reads these arrays on every pick, and a
// neighbouring object that some core writes would slow them all down.
func isolate[T any](s []T) []T {
	if s == nil {
		return nil
	}
	var zero T
	size := int(unsafe.Sizeof(zero))
	if len(s)*size >= 32<<10 {
		return s
	}
	c := make([]T, len(s), max(128, (len(s)*size+63)/64*64)/size)
	copy(c, s)
	return c
}

// Picks reports, for a round robin or weighted picker, how many picks each
// of its endpoints got, by calling add with the endpoint as given to the
// constructor. Those pickers keep no per-endpoint count on the pick path;
// the counts are worked out from their sequence. Other pickers report
// nothing: least-inflight counts in Endpoint.Counters.
func Picks(p balancer.Picker, add func(e *Endpoint, n uint64)) {
	var cp *cyclePicker
	switch p := p.(type) {
	case *cyclePicker:
		cp = p
	case *fixedRoundRobin:
		cp = &p.cyclePicker
	default:
		return
	}
	cp.seq.visits(func(pos uint32, n uint64) {
		i := pos
		if cp.order != nil {
			i = cp.order[pos]
		}
		add(&cp.eps[i], n)
	})
}
