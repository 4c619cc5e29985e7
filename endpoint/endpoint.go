// Package endpoint holds the attributes that etcdlb's load-balancing policies
// read from a resolver.Endpoint: its weight, its zone and its metadata.
//
// The weight is grpc-go's own experimental/balancer/weight.EndpointInfo, so
// grpc's weight-aware policies see the same weights and any resolver that
// already sets it works with etcdlb's policies. The zone and metadata live
// under this package's own unexported key.
//
// Attributes live on the Endpoint, never on its Addresses: grpc-go keys its
// SubConns on the address attributes, so a weight stored there would turn every
// weight change into a reconnect.
//
// One attribute lives on the resolver.State: why a state has no endpoints
// (WithNoEndpointsReason), which the policies put in their error.
package endpoint

import (
	"maps"

	"google.golang.org/grpc/experimental/balancer/weight"
	"google.golang.org/grpc/resolver"
)

// DefaultWeight is the weight of an endpoint that carries none.
const DefaultWeight = 1

// MaxWeight is the largest weight an endpoint may carry. Larger values are
// rejected by the resolvers; the policies clamp anything above it.
const MaxWeight = 1_000_000

// Attrs are the attributes of one endpoint.
type Attrs struct {
	// Weight is the endpoint's share of traffic relative to the others.
	// 0 drains the endpoint: it gets no picks while another is ready.
	Weight uint32
	// Zone is the failure domain the endpoint runs in, e.g. "eu-1a".
	Zone string
	// Metadata is free-form, for the user's own policies and tools.
	// It must not be modified after it is set on an endpoint.
	Metadata map[string]string
}

// info is the value stored under infoKey. Its presence also tells that the
// weight attribute was set on purpose, so that a weight of 0 means drained.
type info struct {
	zone     string
	metadata map[string]string
}

// Equal lets resolver.Attributes compare two values; a map compared with ==
// would panic.
func (i info) Equal(o any) bool {
	oi, ok := o.(info)
	return ok && oi.zone == i.zone && maps.Equal(oi.metadata, i.metadata)
}

type infoKey struct{}

// New returns an endpoint with one address and the given attributes.
func New(addr string, a Attrs) resolver.Endpoint {
	return Set(resolver.Endpoint{Addresses: []resolver.Address{{Addr: addr}}}, a)
}

// Set returns a copy of ep carrying a. A weight above MaxWeight is clamped.
func Set(ep resolver.Endpoint, a Attrs) resolver.Endpoint {
	ep = weight.Set(ep, weight.EndpointInfo{Weight: min(a.Weight, MaxWeight)})
	ep.Attributes = ep.Attributes.WithValue(infoKey{}, info{zone: a.Zone, metadata: a.Metadata})
	return ep
}

// Get returns the attributes of ep. An endpoint that was not set with Set or
// New has no zone, no metadata, and the weight from grpc's weight attribute,
// where 0 (grpc's "unset") counts as DefaultWeight.
func Get(ep resolver.Endpoint) Attrs {
	w := min(weight.FromEndpoint(ep).Weight, MaxWeight)
	i, ok := ep.Attributes.Value(infoKey{}).(info)
	if !ok && w == 0 {
		w = DefaultWeight
	}
	return Attrs{Weight: w, Zone: i.zone, Metadata: i.metadata}
}

// Addr returns the first address of ep, or "" when it has none; etcdlb's
// resolvers make endpoints with exactly one address.
func Addr(ep resolver.Endpoint) string {
	if len(ep.Addresses) == 0 {
		return ""
	}
	return ep.Addresses[0].Addr
}
