package balancer

import (
	"fmt"

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
		algorithm: func(*Config) picker.Algorithm { return picker.RoundRobin{} },
	},
	{
		name:      WeightedName,
		weights:   WeightsExact,
		algorithm: func(*Config) picker.Algorithm { return picker.Weighted{} },
	},
	{
		name:    LeastInflightName,
		weights: WeightsSampled,
		tracks:  picker.Inflight,
		params: []param{{
			field: "choiceCount",
			// As grpc-go's least_request_experimental (gRFC A48): below 2
			// is an error, above 10 is lowered to 10.
			setDefault: func(c *Config) { c.ChoiceCount = picker.DefaultChoiceCount },
			check: func(c *Config) error {
				if c.ChoiceCount < picker.MinChoiceCount {
					return fmt.Errorf("%d, must be at least %d (above %d counts as %[3]d)",
						c.ChoiceCount, picker.MinChoiceCount, picker.MaxChoiceCount)
				}
				c.ChoiceCount = min(c.ChoiceCount, picker.MaxChoiceCount)
				return nil
			},
		}},
		algorithm: func(c *Config) picker.Algorithm { return picker.LeastInflight{ChoiceCount: c.ChoiceCount} },
	},
}

// policy is one entry of the table.
type policy struct {
	name string
	// weights is how its picks follow the endpoints' weights.
	weights Weights
	// tracks is the per-endpoint state its pickers keep in the endpoints'
	// Counters, which outlive pickers; the core binds each endpoint's Done
	// from it and reports what it tracks in the metrics.
	tracks picker.Tracks
	// params are the config fields that this policy alone takes, each a
	// field of Config; every other policy rejects them.
	params []param
	// algorithm returns the policy's algorithm configured by c.
	algorithm func(c *Config) picker.Algorithm
}

// param is a config field that only some policies take.
type param struct {
	field      string // its JSON name in Config
	setDefault func(*Config)
	// check validates the field's value, and may adjust it (clamp); its
	// error says what is wrong with the value, the caller names the field.
	check func(*Config) error
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
