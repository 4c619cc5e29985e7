package balancer

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/balancer/pickfirst"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/status"

	"github.com/etcdlb/etcdlb/endpoint"
	"github.com/etcdlb/etcdlb/metrics"
	"github.com/etcdlb/etcdlb/picker"
)

// lb is one policy instance of one ClientConn: a pick_first child per
// endpoint, and a picker over the ready ones.
//
// Locking: mu is never held while calling into a child balancer, because a
// child may call back UpdateState synchronously, which takes mu.
type lb struct {
	// Immutable.
	cc     balancer.ClientConn
	opts   balancer.BuildOptions
	policy *policy
	clock  clock

	// Used only by UpdateClientConnState (through newChild), which grpc-go
	// never calls concurrently.
	counters counterSlab

	// contended is set once a picker has seen picks from several cores at
	// once (picker.Counting); every picker built after it is striped.
	contended atomic.Bool

	// Guarded by mu.
	mu          sync.Mutex
	cfg         *Config
	children    *resolver.EndpointMap[*child]
	order       []*child // the children in the resolver's order
	resolverErr error    // the last resolver error, until the next good update
	// While a top-down call (an update from the resolver, ExitIdle) walks the
	// children, their state changes only mark the picker dirty; it is
	// rebuilt once at the end.
	inTopDown  bool
	dirty      bool
	rebuilding bool // a goroutine is rebuilding the picker
	closed     bool
	spilled    bool // the last picker left the local zone
	// stopWait stops the timer that rebuilds the picker when the wait for
	// the local zone's first connections ends (Config.LocalZoneWait).
	stopWait func() bool
	// current is the picker in use. Round robin and weighted pickers count
	// their picks in their sequence (see picker.Picks); they are folded into
	// the children's counters one rebuild after the picker is replaced, as
	// retired: grpc-go may still be inside a Pick on a picker it read before
	// the new one was pushed, and folding at once would miss that pick (it
	// did, 1 run in 150 under -race). Scrapes count both.
	current, retired balancer.Picker
	// metrics is the handle of the Metrics attached to the resolver's
	// state (see metrics.Attach); nil when there are none.
	metrics    *metrics.Balancer
	metricsSrc *metrics.Metrics
}

func newBalancer(cc balancer.ClientConn, opts balancer.BuildOptions, p *policy, clk clock) *lb {
	return &lb{
		cc:       cc,
		opts:     opts,
		policy:   p,
		clock:    clk,
		cfg:      defaultConfig(p),
		children: resolver.NewEndpointMap[*child](),
	}
}

// contention is told, through the Done of a pick, that a round robin or
// weighted picker counting on one counter saw another core write it at the
// same moment. From then on the pickers are striped: a serial pick costs
// 1-2 ns more, and picks from several cores stop taking turns on one cache
// line. The first report rebuilds the picker at once.
func (b *lb) contention(balancer.DoneInfo) {
	if b.contended.Load() || b.contended.Swap(true) {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.requestRebuildLocked()
}

func (b *lb) UpdateClientConnState(ccs balancer.ClientConnState) error {
	cfg, ok := ccs.BalancerConfig.(*Config)
	if ccs.BalancerConfig != nil && !ok {
		return fmt.Errorf("%s: config of type %T, want *balancer.Config: %w", b.policy.name, ccs.BalancerConfig, balancer.ErrBadResolverState)
	}
	if cfg == nil {
		cfg = defaultConfig(b.policy)
	}

	b.mu.Lock()
	b.inTopDown = true
	old := b.children
	b.setMetricsLocked(metrics.From(ccs.ResolverState))
	b.mu.Unlock()

	// Health listening lets client-side health checks and outlier detection
	// reach the pick_first children.
	childResolverState := pickfirst.EnableHealthListener(resolver.State{Attributes: ccs.ResolverState.Attributes})
	children := resolver.NewEndpointMap[*child]()
	order := make([]*child, 0, len(ccs.ResolverState.Endpoints))
	attrs := make([]endpoint.Attrs, 0, len(ccs.ResolverState.Endpoints))
	var firstErr error
	for _, ep := range ccs.ResolverState.Endpoints {
		if len(ep.Addresses) == 0 {
			continue
		}
		if _, dup := children.Get(ep); dup {
			continue
		}
		c, ok := old.Get(ep)
		if !ok {
			c = b.newChild(ep)
		}
		children.Set(ep, c)
		order = append(order, c)
		attrs = append(attrs, endpoint.Get(ep))
		s := childResolverState
		s.Endpoints = []resolver.Endpoint{ep}
		if err := c.updateClientConnState(balancer.ClientConnState{ResolverState: s}); err != nil && firstErr == nil {
			firstErr = err
		}
	}

	var removed []*child
	for ep, c := range old.All() {
		if _, ok := children.Get(ep); !ok {
			removed = append(removed, c)
		}
	}

	b.mu.Lock()
	b.cfg = cfg
	switch why := endpoint.NoEndpointsReason(ccs.ResolverState); {
	case len(order) > 0:
		b.resolverErr = nil
	case why != nil:
		b.resolverErr = why
	} // else the last resolver error still says why there are none
	b.children = children
	b.order = order
	for i, c := range order {
		c.attrs = attrs[i]
	}
	for _, c := range removed {
		c.removed = true
	}
	b.inTopDown = false
	b.rebuildLocked()
	b.mu.Unlock()

	// Closed once the new picker no longer points at them.
	for _, c := range removed {
		c.close()
	}

	if len(order) == 0 {
		return balancer.ErrBadResolverState
	}
	return firstErr
}

func (b *lb) ResolverError(err error) {
	b.mu.Lock()
	b.resolverErr = err
	b.inTopDown = true
	children := b.order
	b.mu.Unlock()

	for _, c := range children {
		c.resolverError(err)
	}

	b.mu.Lock()
	b.inTopDown = false
	b.rebuildLocked()
	b.mu.Unlock()
}

// UpdateSubConnState is unused: the pick_first children register a
// StateListener for each SubConn.
func (b *lb) UpdateSubConnState(balancer.SubConn, balancer.SubConnState) {}

func (b *lb) ExitIdle() {
	b.mu.Lock()
	children := b.order
	b.mu.Unlock()
	for _, c := range children {
		c.exitIdle()
	}
}

func (b *lb) Close() {
	b.mu.Lock()
	b.setMetricsLocked(nil)
	b.closed = true
	b.stopWaitLocked()
	children := b.order
	b.order = nil
	b.children = resolver.NewEndpointMap[*child]()
	b.mu.Unlock()
	for _, c := range children {
		c.close()
	}
}

// requestRebuildLocked rebuilds the picker after a child's state changed.
// The rebuild runs on a goroutine of its own, one at a time, and changes that
// arrive meanwhile are folded into its next round: a burst of N children
// becoming ready costs a few O(N) rebuilds, not N of them. grpc-go's
// endpointsharding rebuilds on every child update, which is quadratic.
func (b *lb) requestRebuildLocked() {
	b.dirty = true
	if b.inTopDown || b.rebuilding || b.closed {
		return
	}
	b.rebuilding = true
	go func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		for b.dirty && !b.inTopDown && !b.closed {
			b.rebuildLocked()
		}
		b.rebuilding = false
	}()
}

// rebuildLocked builds a picker over the children's current states and
// pushes it to the ClientConn.
func (b *lb) rebuildLocked() {
	b.dirty = false
	if b.closed {
		return
	}
	start := time.Now()
	var ready []picker.Endpoint
	var pending int
	var failing []*child
	firstConnecting := b.waitForLocalLocked()
	for _, c := range b.order {
		switch c.state.ConnectivityState {
		case connectivity.Ready:
			ready = append(ready, picker.Endpoint{
				Picker:   c.state.Picker,
				Weight:   c.attrs.Weight,
				Zone:     c.attrs.Zone,
				Counters: c.counters,
				Done:     c.done,
				// pick_first's READY picker returns its one SubConn
				// on every pick; any change makes a new picker, and
				// this one is rebuilt.
				Fixed: true,
			})
		case connectivity.TransientFailure:
			failing = append(failing, c)
		default: // Idle and Connecting: on their way to READY.
			pending++
		}
	}
	var queued, unavailable prometheus.Counter
	if b.metrics != nil {
		queued, unavailable = b.metrics.QueuedPicks(), b.metrics.UnavailablePicks()
	}
	wasSpilled := b.spilled
	b.spilled = false
	// A pick made on the picker retired before, after this, is lost.
	picker.Picks(b.retired, func(e *picker.Endpoint, n uint64) { e.Counters.AddPicks(n) })
	b.retired, b.current = b.current, nil
	var sel picker.Selection
	if len(ready) > 0 {
		sel = picker.Select(ready, b.cfg.LocalZone, b.cfg.LocalZoneMinReady, firstConnecting)
	}
	switch {
	case len(sel.Endpoints) > 0:
		b.spilled = sel.Spilled
		b.current = b.policy.newPicker(sel.Endpoints, b.cfg, picker.Counting{
			Striped:   b.contended.Load(),
			Contended: b.contention, // one func value per picker, not per pick
		})
		b.cc.UpdateState(balancer.State{
			ConnectivityState: connectivity.Ready,
			Picker:            b.current,
		})
	case pending > 0:
		// Picks wait for a child to become ready, or for the local zone.
		b.cc.UpdateState(balancer.State{
			ConnectivityState: connectivity.Connecting,
			Picker:            &failPicker{err: balancer.ErrNoSubConnAvailable, count: queued},
		})
	default:
		b.cc.UpdateState(balancer.State{
			ConnectivityState: connectivity.TransientFailure,
			Picker:            &failPicker{err: b.unavailableLocked(failing), count: unavailable},
		})
	}
	if b.metrics != nil {
		b.metrics.Rebuilt(time.Since(start), b.spilled && !wasSpilled)
	}
}

// failPicker fails every pick with err, counting them when count is set.
type failPicker struct {
	err   error
	count prometheus.Counter
}

func (p *failPicker) Pick(balancer.PickInfo) (balancer.PickResult, error) {
	if p.count != nil {
		p.count.Inc()
	}
	return balancer.PickResult{}, p.err
}

// setMetricsLocked starts or stops reporting to m.
func (b *lb) setMetricsLocked(m *metrics.Metrics) {
	if m == b.metricsSrc {
		return
	}
	if b.metrics != nil {
		b.metrics.Close()
		b.metrics = nil
	}
	b.metricsSrc = m
	if m != nil {
		b.metrics = m.Balancer(b.policy.name, strings.TrimPrefix(b.opts.Target.Endpoint(), "/"), (*endpointSource)(b))
	}
}

// endpointSource reports the children's states to the metrics at scrape
// time.
type endpointSource lb

func (s *endpointSource) Endpoints(report func(metrics.EndpointState)) {
	b := (*lb)(s)
	b.mu.Lock()
	defer b.mu.Unlock()
	unfolded := map[*picker.Counters]uint64{}
	for _, p := range []balancer.Picker{b.retired, b.current} {
		picker.Picks(p, func(e *picker.Endpoint, n uint64) { unfolded[e.Counters] += n })
	}
	for _, c := range b.order {
		e := metrics.EndpointState{Addr: c.addr, Zone: c.attrs.Zone, Weight: c.attrs.Weight,
			Picks: c.counters.Picks() + unfolded[c.counters], Spilled: b.spilled}
		switch c.state.ConnectivityState {
		case connectivity.Ready:
			e.State = "ready"
			if c.attrs.Weight == 0 {
				e.State = "drained"
			}
		case connectivity.TransientFailure:
			e.State = "failing"
		default:
			e.State = "connecting"
		}
		if b.policy.leastInflight {
			e.Inflight, e.HasInflight = c.counters.Inflight(), true
		}
		report(e)
	}
}

// maxReportedFailures bounds the length of the error a failing pick returns.
const maxReportedFailures = 5

// unavailableLocked says why no endpoint can take a call: which endpoints
// failed and why, or what the resolver said.
//
// The error is plain, not a status: grpc-go fails a fail-fast call with
// Unavailable and this message, and keeps a WaitForReady call waiting for
// the next picker. A status error would end every call, WaitForReady or not
// (picker_wrapper.go: "Status error: end the RPC unconditionally").
func (b *lb) unavailableLocked(failing []*child) error {
	var msg strings.Builder
	fmt.Fprintf(&msg, "%s: ", b.policy.name)
	if len(failing) == 0 {
		msg.WriteString("no endpoints")
		if b.resolverErr != nil {
			fmt.Fprintf(&msg, "; resolver error: %v", b.resolverErr)
		}
		msg.WriteString(unresolvedTargetHint(b.opts.Target))
		return errors.New(msg.String())
	}
	fmt.Fprintf(&msg, "all %d endpoints failing", len(failing))
	for i, c := range failing {
		if i == maxReportedFailures {
			fmt.Fprintf(&msg, "; and %d more", len(failing)-i)
			break
		}
		// A failing pick_first picker returns its connection error.
		_, err := c.state.Picker.Pick(balancer.PickInfo{})
		if s, ok := status.FromError(err); ok {
			err = errors.New(s.Message())
		}
		fmt.Fprintf(&msg, "; %s: %v", c.addr, err)
	}
	if b.resolverErr != nil {
		fmt.Fprintf(&msg, "; resolver error: %v", b.resolverErr)
	}
	return errors.New(msg.String())
}
