// Package balancer registers etcdlb's load-balancing policies with grpc-go:
// etcdlb_round_robin, etcdlb_weighted and etcdlb_least_inflight, each zone
// aware and configured in the service config (see Config).
//
// Each policy runs one pick_first child per endpoint, as grpc-go's own
// policies do, so that health checking and outlier detection reach the
// children, and builds an immutable picker (package picker) over the ready
// children on every change. Weights and zones are read from the endpoint's
// attributes (package endpoint): a weight or zone change rebuilds the picker
// and never reconnects.
//
// Import the package for its side effect to register the policies:
//
//	import _ "github.com/etcdlb/etcdlb/balancer"
package balancer

import (
	"encoding/json"

	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/serviceconfig"

	"github.com/etcdlb/etcdlb/picker"
)

// Names of the policies, as used in loadBalancingConfig.
const (
	RoundRobinName    = "etcdlb_round_robin"
	WeightedName      = "etcdlb_weighted"
	LeastInflightName = "etcdlb_least_inflight"
)

// policy is what distinguishes the three policies: their name and how they
// build a picker over the selected endpoints.
type policy struct {
	name string
	// leastInflight policies count in-flight RPCs and take choiceCount.
	leastInflight bool
	// newPicker builds a picker over eps; round robin and weighted count
	// their picks as c says.
	newPicker func(eps []picker.Endpoint, cfg *Config, c picker.Counting) balancer.Picker
}

var policies = []*policy{
	{
		name: RoundRobinName,
		newPicker: func(eps []picker.Endpoint, _ *Config, c picker.Counting) balancer.Picker {
			return picker.NewRoundRobin(eps, c)
		},
	},
	{
		name: WeightedName,
		newPicker: func(eps []picker.Endpoint, _ *Config, c picker.Counting) balancer.Picker {
			return picker.NewWeighted(eps, c)
		},
	},
	{
		name:          LeastInflightName,
		leastInflight: true,
		newPicker: func(eps []picker.Endpoint, cfg *Config, _ picker.Counting) balancer.Picker {
			return picker.NewLeastInflight(eps, cfg.ChoiceCount)
		},
	},
}

func init() {
	for _, p := range policies {
		balancer.Register(builder{p})
	}
}

type builder struct{ p *policy }

func (b builder) Name() string { return b.p.name }

func (b builder) Build(cc balancer.ClientConn, opts balancer.BuildOptions) balancer.Balancer {
	return newBalancer(cc, opts, b.p, realClock{})
}

func (b builder) ParseConfig(js json.RawMessage) (serviceconfig.LoadBalancingConfig, error) {
	return parseConfig(b.p, js)
}
