package picker

import "google.golang.org/grpc/balancer"

// NewRoundRobin returns a picker that gives each endpoint the same share of
// picks, in turn. Weights are ignored. eps must not be empty.
func NewRoundRobin(eps []Endpoint) balancer.Picker {
	return &cyclePicker{eps: eps, seq: newSequence(len(eps))}
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
	return &cyclePicker{eps: eps, order: order, seq: newSequence(len(order))}
}

// cyclePicker walks a fixed cycle: the endpoints in turn, or a weighted
// schedule of their indices.
type cyclePicker struct {
	eps   []Endpoint
	order []uint32 // nil: position i is endpoint i
	seq   *sequence
}

func (p *cyclePicker) Pick(info balancer.PickInfo) (balancer.PickResult, error) {
	i := p.seq.next()
	if p.order != nil {
		i = p.order[i]
	}
	return pickEndpoint(&p.eps[i], info)
}

// Picks reports, for a round robin or weighted picker, how many picks each
// of its endpoints got, by calling add with the endpoint as given to the
// constructor. Those pickers keep no per-endpoint count on the pick path;
// the counts are worked out from their sequence. Other pickers report
// nothing: least-inflight counts in Endpoint.Counters.
func Picks(p balancer.Picker, add func(e *Endpoint, n uint64)) {
	cp, ok := p.(*cyclePicker)
	if !ok {
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
