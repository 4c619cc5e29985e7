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
