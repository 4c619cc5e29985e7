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
//
// # One core, a table of policies
//
// The core (lb and child: the children, rebuilds, zone selection and the
// wait for the local zone, drain, error messages, metrics) is written once.
// What tells the policies apart is one entry each in the table in
// policies.go: the name, how the picks follow weights, what its pickers
// keep in the endpoints' Counters (picker.Tracks, reported in the metrics),
// the state it keeps per endpoint beyond them and the Done bound from it,
// the config fields only this policy takes (a Params struct with their
// defaults and limits), and the picker.Algorithm built from those fields.
// Config parsing, the metrics, the demo, the benchmarks and the tests that
// run every policy read the table (Policies, Names).
//
// A new policy touches exactly these files, and no other:
//
//  1. its picker file, picker/<policy>.go: a type that implements
//     picker.Algorithm, whose NewPicker builds an immutable picker of its
//     own type (no lock, no allocation per pick), using fixedResults and
//     pickEndpoint as the others do; per-endpoint state of its own comes
//     in picker.Endpoint.State, converted to its own type in NewPicker;
//  2. balancer/policies.go: its name constant and its table entry, and its
//     Params type (exported, documented, comparable, with JSON tags and a
//     check method whose errors name the field) when it takes config
//     fields; the entry's perEndpoint func makes its per-endpoint state and
//     binds the Done that ends a call;
//  3. its tests: the algorithm's in picker; balancer's table-driven tests
//     (config, fuzzing, every policy on fake and real connections) pick
//     the entry up by themselves, as policytable_test.go shows with a toy
//     fourth policy that has a config field and per-endpoint state;
//  4. the docs: the README's Policies section.
package balancer

import (
	"encoding/json"

	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/serviceconfig"
)

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
