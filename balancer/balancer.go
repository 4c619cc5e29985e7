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
// policies.go: the name, how the picks follow weights, the per-endpoint
// state the pickers keep (picker.Tracks), the config fields only this
// policy takes with their defaults and limits, and the picker.Algorithm.
// Config parsing, the metrics, the demo, the benchmarks and the tests that
// run every policy read the table (Policies, Names).
//
// To add a policy:
//
//  1. write its algorithm in a file of its own in package picker: a type
//     that implements picker.Algorithm, whose NewPicker builds an immutable
//     picker of its own type (no lock, no allocation per pick), using
//     fixedResults and pickEndpoint as the others do;
//  2. if it keeps per-endpoint state beyond what picker.Tracks offers, add
//     a Tracks bit and the state to picker.Counters (which the balancer
//     packs densely; keep it small);
//  3. add its name constant and its entry to the table; a config field of
//     its own is a field of Config (with its doc) and a param in the entry;
//  4. test the algorithm in picker, and the entry in balancer's
//     table-driven tests (they pick it up by themselves), and document it
//     in the README's Policies section.
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
