// Package static is a resolver with a fixed table of endpoints, carrying
// weights and zones, for users without etcd and for tests. The table can be
// replaced at any time; the ClientConns that use it see the new one at once.
//
//	r := static.New("backends",
//		endpoint.New("10.0.0.1:8080", endpoint.Attrs{Weight: 3, Zone: "eu-1a"}),
//		endpoint.New("10.0.0.2:8080", endpoint.Attrs{Weight: 1, Zone: "eu-1b"}))
//	conn, err := grpc.NewClient("backends:///svc", grpc.WithResolvers(r), ...)
package static

import (
	"slices"
	"sync"

	"google.golang.org/grpc/resolver"

	"github.com/etcdlb/etcdlb/metrics"
)

// Resolver is a resolver.Builder for one scheme whose every target resolves
// to the same table of endpoints.
type Resolver struct {
	scheme  string
	metrics *metrics.Metrics

	mu        sync.Mutex
	endpoints []resolver.Endpoint
	conns     map[*conn]struct{}
}

// New returns a Resolver for scheme serving endpoints.
func New(scheme string, endpoints ...resolver.Endpoint) *Resolver {
	return &Resolver{scheme: scheme, endpoints: slices.Clone(endpoints), conns: map[*conn]struct{}{}}
}

// WithMetrics passes m on to the load-balancing policies of the ClientConns
// that use r (see metrics.Attach). Call it before r is used.
func (r *Resolver) WithMetrics(m *metrics.Metrics) *Resolver {
	r.metrics = m
	return r
}

// Scheme returns the scheme the Resolver was created for.
func (r *Resolver) Scheme() string { return r.scheme }

// Build starts resolving for one ClientConn.
func (r *Resolver) Build(_ resolver.Target, cc resolver.ClientConn, _ resolver.BuildOptions) (resolver.Resolver, error) {
	c := &conn{r: r, cc: cc}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.conns[c] = struct{}{}
	c.push(r.endpoints, r.metrics)
	return c, nil
}

// Update replaces the table and pushes it to every ClientConn using it.
func (r *Resolver) Update(endpoints ...resolver.Endpoint) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.endpoints = slices.Clone(endpoints)
	for c := range r.conns {
		c.push(r.endpoints, r.metrics)
	}
}

type conn struct {
	r  *Resolver
	cc resolver.ClientConn
}

// push sends endpoints, with their addresses also in State.Addresses for
// policies that still read those. Called with r.mu held, which keeps
// updates in order.
func (c *conn) push(endpoints []resolver.Endpoint, m *metrics.Metrics) {
	s := resolver.State{Endpoints: endpoints}
	for _, ep := range endpoints {
		s.Addresses = append(s.Addresses, ep.Addresses...)
	}
	if m != nil {
		s = metrics.Attach(s, m)
	}
	c.cc.UpdateState(s)
}

// ResolveNow has nothing to refresh.
func (c *conn) ResolveNow(resolver.ResolveNowOptions) {}

// Close stops updates to this ClientConn.
func (c *conn) Close() {
	c.r.mu.Lock()
	defer c.r.mu.Unlock()
	delete(c.r.conns, c)
}
