package balancer

import (
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/balancer/pickfirst"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/resolver"

	"github.com/etcdlb/etcdlb/endpoint"
	"github.com/etcdlb/etcdlb/picker"
)

// child is one endpoint: its pick_first balancer, and the state that must
// outlive any one picker.
type child struct {
	// The parent's ClientConn, embedded so that pick_first creates its
	// SubConns there; UpdateState is intercepted.
	balancer.ClientConn

	// Immutable.
	parent *lb
	// lbMu serializes calls into pick_first, which top-down calls and
	// exitIdle goroutines would otherwise make concurrently. It is taken
	// before parent.mu, never while holding it (see lb).
	lbMu sync.Mutex
	addr string // for error messages: the endpoint's addresses
	// policyState is what the policy keeps for this endpoint beyond its
	// counters (see policy.perEndpoint), nil when nothing; done is attached to
	// every pick of the endpoint, bound once so that a pick does not
	// allocate; nil when the policy keeps no per-RPC state.
	policyState any
	done        func(balancer.DoneInfo)

	// Accessed atomically, on the pick path; from the parent's counterSlab.
	// They outlive pickers, so an RPC that ends after a rebuild decrements
	// the counter it incremented, and picks add up across pickers.
	counters *picker.Counters

	// Guarded by parent.mu.
	attrs    endpoint.Attrs
	state    balancer.State
	removed  bool
	appeared time.Time // when the resolver first sent the endpoint
	// settled is set once the endpoint has been ready or failed: it is no
	// longer on its first connection (see Config.LocalZoneWait).
	settled bool

	// Guarded by lbMu.
	lb     balancer.Balancer
	closed bool
}

func (b *lb) newChild(ep resolver.Endpoint) *child {
	addrs := make([]string, len(ep.Addresses))
	for i, a := range ep.Addresses {
		addrs[i] = a.Addr
	}
	c := &child{
		ClientConn: b.cc,
		parent:     b,
		addr:       strings.Join(addrs, ","),
		counters:   b.counters.next(),
		appeared:   b.clock.Now(),
		state:      balancer.State{ConnectivityState: connectivity.Connecting},
	}
	if b.policy.perEndpoint != nil {
		c.policyState, c.done = b.policy.perEndpoint(c.counters)
	}
	c.lb = balancer.Get(pickfirst.Name).Build(c, b.opts)
	return c
}

// stateIndexLocked is the index in endpointStates of c's state, as the
// metrics report it. Guarded by parent.mu.
func (c *child) stateIndexLocked() int {
	switch c.state.ConnectivityState {
	case connectivity.Ready:
		if c.attrs.Weight == 0 {
			return stateDrained
		}
		return stateReady
	case connectivity.TransientFailure:
		return stateFailing
	default:
		return stateConnecting
	}
}

// UpdateState receives the pick_first child's state.
func (c *child) UpdateState(s balancer.State) {
	b := c.parent
	b.mu.Lock()
	if !c.removed {
		c.state = s
		if s.ConnectivityState == connectivity.Ready || s.ConnectivityState == connectivity.TransientFailure {
			c.settled = true
		}
		b.requestRebuildLocked()
	}
	b.mu.Unlock()
	if s.ConnectivityState == connectivity.Idle {
		// Reconnect at once, as grpc-go's round_robin does: only ready
		// children are picked, so nothing else would wake this one.
		go c.exitIdle()
	}
}

func (c *child) updateClientConnState(s balancer.ClientConnState) error {
	c.lbMu.Lock()
	defer c.lbMu.Unlock()
	return c.lb.UpdateClientConnState(s)
}

func (c *child) resolverError(err error) {
	c.lbMu.Lock()
	defer c.lbMu.Unlock()
	c.lb.ResolverError(err)
}

func (c *child) exitIdle() {
	c.lbMu.Lock()
	defer c.lbMu.Unlock()
	if !c.closed {
		c.lb.ExitIdle()
	}
}

func (c *child) close() {
	c.lbMu.Lock()
	defer c.lbMu.Unlock()
	if !c.closed {
		c.closed = true
		c.lb.Close()
	}
}
