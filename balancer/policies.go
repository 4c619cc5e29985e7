package balancer

import (
	"fmt"

	"google.golang.org/grpc/balancer"

	"github.com/etcdlb/etcdlb/picker"
)

// Names of the policies, as used in loadBalancingConfig.
const (
	RoundRobinName    = "etcdlb_round_robin"
	WeightedName      = "etcdlb_weighted"
	LeastInflightName = "etcdlb_least_inflight"
)

// policies is the table of etcdlb's policies: everything that tells one
// from another. The core (lb, child, config parsing, metrics) reads only
// this; the demo, the benchmarks and the policy-parameterised tests iterate
// it through Policies. See the package doc for how to add one.
var policies = []*policy{
	{
		name:      RoundRobinName,
		weights:   WeightsIgnored,
		algorithm: func(Params) picker.Algorithm { return picker.RoundRobin{} },
	},
	{
		name:      WeightedName,
		weights:   WeightsExact,
		algorithm: func(Params) picker.Algorithm { return picker.Weighted{} },
	},
	{
		name:        LeastInflightName,
		weights:     WeightsSampled,
		tracks:      picker.Inflight,
		perEndpoint: func(c *picker.Counters) (any, func(balancer.DoneInfo)) { return nil, c.Done },
		params:      LeastInflightParams{ChoiceCount: picker.DefaultChoiceCount},
		algorithm: func(p Params) picker.Algorithm {
			return picker.LeastInflight{ChoiceCount: p.(LeastInflightParams).ChoiceCount}
		},
	},
}

// LeastInflightParams are the config fields that etcdlb_least_inflight
// alone takes, besides Config's.
type LeastInflightParams struct {
	// ChoiceCount is how many endpoints each pick samples. Default 2;
	// below 2 is rejected, above 10 counts as 10, as grpc-go's
	// least_request_experimental takes it (gRFC A48).
	ChoiceCount int `json:"choiceCount,omitempty"`
}

func (p LeastInflightParams) check() (Params, error) {
	if p.ChoiceCount < picker.MinChoiceCount {
		return nil, fmt.Errorf("config field choiceCount: %d, must be at least %d (above %d counts as %[3]d)",
			p.ChoiceCount, picker.MinChoiceCount, picker.MaxChoiceCount)
	}
	p.ChoiceCount = min(p.ChoiceCount, picker.MaxChoiceCount)
	return p, nil
}

// policy is one entry of the table.
type policy struct {
	name string
	// weights is how its picks follow the endpoints' weights.
	weights Weights
	// tracks is what its pickers keep in the endpoints' Counters; the core
	// reports it in the metrics.
	tracks picker.Tracks
	// perEndpoint, when set, is called once for each endpoint the balancer
	// adds, with the endpoint's Counters. It returns the state the policy
	// keeps for that endpoint beyond Counters (nil for none), which
	// outlives pickers, dies with the endpoint and reaches the pickers as
	// picker.Endpoint.State; and the Done to attach to every pick of the
	// endpoint (nil for none), bound once so that a pick does not
	// allocate.
	perEndpoint func(c *picker.Counters) (state any, done func(balancer.DoneInfo))
	// params holds the defaults of the config fields that this policy
	// alone takes; nil when it takes none. Every other policy rejects
	// them.
	params Params
	// algorithm returns the policy's algorithm configured by its params
	// (a value of params' type, checked; nil when params is nil).
	algorithm func(Params) picker.Algorithm
}

// Params are the config fields that one policy alone takes: a comparable
// struct (LeastInflightParams) whose exported fields have JSON tags, as
// Config's do, read from the same JSON object. Config.Params returns them.
type Params interface {
	// check validates the values, and returns them adjusted where the
	// policy adjusts them (clamps); its error names the field, as
	// "config field choiceCount: ...".
	check() (Params, error)
}

// Weights is how a policy's picks follow the endpoints' weights.
type Weights int

const (
	// WeightsIgnored: every ready endpoint gets the same share.
	WeightsIgnored Weights = iota
	// WeightsExact: every cycle of picks gives each endpoint exactly its
	// weight's share.
	WeightsExact
	// WeightsSampled: endpoints are sampled in proportion to their
	// weights, and the load decides between the samples.
	WeightsSampled
)

// Policy describes one of etcdlb's policies, for tools, benchmarks and
// tests that run each of them.
type Policy struct {
	Name    string
	Weights Weights
	// CountsInflight: the policy counts each endpoint's calls in flight,
	// and reports them in the metrics.
	CountsInflight bool
}

// Policies returns etcdlb's policies, in the order of the table: round
// robin, weighted, least-inflight.
func Policies() []Policy {
	ps := make([]Policy, len(policies))
	for i, p := range policies {
		ps[i] = Policy{Name: p.name, Weights: p.weights, CountsInflight: p.tracks.Has(picker.Inflight)}
	}
	return ps
}

// Names returns the names of etcdlb's policies, in the order of Policies.
func Names() []string {
	names := make([]string, len(policies))
	for i, p := range policies {
		names[i] = p.name
	}
	return names
}
