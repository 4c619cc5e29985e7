package picker

import (
	"unsafe"

	"google.golang.org/grpc/balancer"

	"github.com/etcdlb/etcdlb/internal/pickerinfo"
)

// RoundRobin gives each endpoint the same share of picks, in turn. Weights
// are ignored.
type RoundRobin struct{}

// NewPicker implements Algorithm.
func (RoundRobin) NewPicker(eps []Endpoint, s *Shared) balancer.Picker {
	return newRoundRobin(eps, s.counting())
}

// Weighted gives each endpoint a share of picks in proportion to its
// weight, interleaved smoothly (see schedule). With equal weights it is
// RoundRobin.
type Weighted struct{}

// NewPicker implements Algorithm.
func (Weighted) NewPicker(eps []Endpoint, s *Shared) balancer.Picker {
	return newWeighted(eps, s.counting())
}

// counting is how a round robin or weighted picker counts its picks (see
// sequence). Its zero value is a serial picker that reports nothing.
type counting struct {
	// striped pickers count on several counters on cache lines of their
	// own, so that picks from several cores at once do not all write one
	// line; a pick costs 1-2 ns more. Other pickers count on one counter.
	striped bool
	// contended, for a picker that is not striped, is attached as the Done
	// of a pick that found another core writing the counter at the same
	// moment (unless the pick's result has a Done of its own): the owner's
	// cue to build its next picker striped (see Shared). It is called
	// when that RPC ends, and may be called many times.
	contended func(balancer.DoneInfo)
}

func newRoundRobin(eps []Endpoint, c counting) balancer.Picker {
	if results := fixedResults(eps); results != nil && !c.striped {
		p := &fixedRoundRobin{}
		p.init(eps, nil, results, len(eps), c)
		return p
	}
	return newCyclePicker(eps, nil, len(eps), c)
}

func newWeighted(eps []Endpoint, c counting) balancer.Picker {
	weights := make([]uint32, len(eps))
	for i := range eps {
		weights[i] = eps[i].Weight
	}
	order := schedule(weights)
	if order == nil {
		return newRoundRobin(eps, c)
	}
	return newCyclePicker(eps, isolate(order), len(order), c)
}

func newCyclePicker(eps []Endpoint, order []uint32, length int, c counting) *cyclePicker {
	p := &cyclePicker{}
	p.init(eps, order, fixedResults(eps), length, c)
	return p
}

func (p *cyclePicker) init(eps []Endpoint, order []uint32, results []balancer.PickResult, length int, c counting) {
	p.eps, p.order, p.results = isolate(eps), order, isolate(results)
	p.contended = c.contended
	p.seq.init(length, c.striped)
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
	results   []balancer.PickResult
	eps       []Endpoint
	contended func(balancer.DoneInfo) // counting.contended
	_         [192 - unsafe.Sizeof(sequence{}) - 3*unsafe.Sizeof([]byte(nil)) - unsafe.Sizeof(func() {})]byte
}

func (p *cyclePicker) Pick(info balancer.PickInfo) (balancer.PickResult, error) {
	var n uint64
	var contended bool
	if p.seq.stripes != nil {
		n = p.seq.countStriped()
	} else {
		n, contended = p.seq.countSerial()
	}
	i := p.seq.position(n)
	if p.order != nil {
		i = p.order[i]
	}
	var r balancer.PickResult
	if p.results != nil {
		r = p.results[i]
	} else {
		var err error
		if r, err = pickEndpoint(&p.eps[i], info); err != nil {
			return r, err
		}
	}
	if contended && r.Done == nil {
		r.Done = p.contended
	}
	return r, nil
}

// fixedRoundRobin is a serial round robin over Fixed endpoints, the common
// case (pick_first children). Its pick calls nothing, so it needs no stack
// frame, and its only branch is the contention check.
type fixedRoundRobin struct{ cyclePicker }

func (p *fixedRoundRobin) Pick(balancer.PickInfo) (balancer.PickResult, error) {
	n, contended := p.seq.countSerial()
	r := p.results[p.seq.position(n)]
	if contended && r.Done == nil {
		r.Done = p.contended
	}
	return r, nil
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

// Picks reports, for a picker that keeps no per-endpoint count on the pick
// path, how many picks each of its endpoints got, by calling add with the
// endpoint as given to NewPicker. Round robin and weighted work the counts
// out from their sequence; other pickers report nothing: they count in
// Endpoint.Counters. An owner folds a retired picker's picks into the
// endpoints' Counters with AddPicks.
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

func init() {
	pickerinfo.Striped = func(p balancer.Picker) bool {
		cp, ok := p.(*cyclePicker)
		return ok && cp.seq.stripes != nil
	}
	pickerinfo.Stripes = func(p balancer.Picker) bool {
		switch p.(type) {
		case *cyclePicker, *fixedRoundRobin:
			return true
		}
		return false
	}
}
