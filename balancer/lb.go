package balancer

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/balancer/pickfirst"
	"google.golang.org/grpc/connectivity"
	estats "google.golang.org/grpc/experimental/stats"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/serviceconfig"
	"google.golang.org/grpc/status"

	"github.com/etcdlb/etcdlb/endpoint"
	"github.com/etcdlb/etcdlb/metrics"
	"github.com/etcdlb/etcdlb/picker"
)

// lb is one policy instance of one ClientConn: a pick_first child per
// endpoint, and a picker over the ready ones.
//
// Lock order: child.lbMu, then lb.mu, then the metrics collector's lock.
// mu is never held while calling into a child balancer: a child calls back
// UpdateState synchronously, which takes mu, while the caller holds its
// lbMu. The pick path takes no lock.
type lb struct {
	// Immutable.
	cc     balancer.ClientConn
	opts   balancer.BuildOptions
	policy *policy
	clock  clock
	target string // the ClientConn's target, for grpc's metrics
	// shared is the feedback of the successive pickers (picker.Shared):
	// the first collision of picks from several cores on a round-robin
	// counter rebuilds the picker, striped.
	shared *picker.Shared

	// Used only by UpdateClientConnState (through newChild), which grpc-go
	// never calls concurrently.
	counters counterSlab

	// Guarded by mu.
	mu          sync.Mutex
	cfg         *Config
	children    *resolver.EndpointMap[*child]
	order       []*child // the children in the resolver's order
	resolverErr error    // the last resolver error, until the next good update
	// Rebuilds: while a top-down call (an update from the resolver,
	// ExitIdle) walks the children, their state changes only set dirty;
	// the picker is rebuilt once at the end. Otherwise a change starts a
	// rebuilding goroutine, one at a time (requestRebuildLocked).
	inTopDown  bool
	dirty      bool
	rebuilding bool
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
	b := &lb{
		cc:       cc,
		opts:     opts,
		policy:   p,
		clock:    clk,
		target:   cc.Target(),
		cfg:      defaultConfig(p),
		children: resolver.NewEndpointMap[*child](),
	}
	b.shared = picker.NewShared(func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		b.requestRebuildLocked()
	})
	return b
}

// update is what UpdateClientConnState takes from one resolver state.
type update struct {
	cfg      *Config
	children *resolver.EndpointMap[*child]
	order    []*child         // the children in the resolver's order
	attrs    []endpoint.Attrs // order's attributes
	removed  []*child         // children whose endpoint is gone
	noneWhy  error            // why there are no endpoints, when the resolver says
}

func (b *lb) UpdateClientConnState(ccs balancer.ClientConnState) error {
	cfg, err := b.config(ccs.BalancerConfig)
	if err != nil {
		return err
	}
	old := b.beginTopDown(metrics.From(ccs.ResolverState))
	u, firstErr := b.updateChildren(old, ccs.ResolverState)
	u.cfg, u.noneWhy = cfg, endpoint.NoEndpointsReason(ccs.ResolverState)
	b.endTopDown(u)
	// Closed once the new picker no longer points at them.
	for _, c := range u.removed {
		c.close()
	}
	if len(u.order) == 0 {
		return balancer.ErrBadResolverState
	}
	return firstErr
}

// config returns the parsed config grpc-go passes, or the defaults.
func (b *lb) config(c serviceconfig.LoadBalancingConfig) (*Config, error) {
	cfg, ok := c.(*Config)
	if c != nil && !ok {
		return nil, fmt.Errorf("%s: config of type %T, want *balancer.Config: %w", b.policy.name, c, balancer.ErrBadResolverState)
	}
	switch {
	case cfg == nil:
		cfg = defaultConfig(b.policy)
	case reflect.TypeOf(cfg.params) == reflect.TypeOf(b.policy.params):
	case cfg.params == nil:
		// A Config made by hand rather than parsed: the policy's own
		// fields take their defaults.
		own := *cfg
		own.params = b.policy.params
		cfg = &own
	default:
		return nil, fmt.Errorf("%s: config with the fields of another policy (%T): %w", b.policy.name, cfg.params, balancer.ErrBadResolverState)
	}
	return cfg, nil
}

// beginTopDown starts a resolver update: children's state changes wait
// for its end. It returns the children before the update.
func (b *lb) beginTopDown(m *metrics.Metrics) *resolver.EndpointMap[*child] {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.inTopDown = true
	b.setMetricsLocked(m)
	return b.children
}

// updateChildren passes each endpoint of s to its child, made when new,
// and returns the children and which of old are gone, with the first error
// a child returned.
func (b *lb) updateChildren(old *resolver.EndpointMap[*child], s resolver.State) (update, error) {
	// Health listening lets client-side health checks and outlier detection
	// reach the pick_first children.
	childState := pickfirst.EnableHealthListener(resolver.State{Attributes: s.Attributes})
	u := update{
		children: resolver.NewEndpointMap[*child](),
		order:    make([]*child, 0, len(s.Endpoints)),
		attrs:    make([]endpoint.Attrs, 0, len(s.Endpoints)),
	}
	var firstErr error
	for _, ep := range s.Endpoints {
		if _, dup := u.children.Get(ep); dup || len(ep.Addresses) == 0 {
			continue
		}
		c, ok := old.Get(ep)
		if !ok {
			c = b.newChild(ep)
		}
		u.children.Set(ep, c)
		u.order = append(u.order, c)
		u.attrs = append(u.attrs, endpoint.Get(ep))
		cs := childState
		cs.Endpoints = []resolver.Endpoint{ep}
		if err := c.updateClientConnState(balancer.ClientConnState{ResolverState: cs}); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	for ep, c := range old.All() {
		if _, ok := u.children.Get(ep); !ok {
			u.removed = append(u.removed, c)
		}
	}
	return u, firstErr
}

// endTopDown installs u and builds the picker.
func (b *lb) endTopDown(u update) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.cfg = u.cfg
	switch {
	case len(u.order) > 0:
		b.resolverErr = nil
	case u.noneWhy != nil:
		b.resolverErr = u.noneWhy
	} // else the last resolver error still says why there are none
	b.children, b.order = u.children, u.order
	for i, c := range u.order {
		c.attrs = u.attrs[i]
	}
	for _, c := range u.removed {
		c.removed = true
	}
	b.inTopDown = false
	b.rebuildLocked()
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

// snapshot is the children's states that one picker is built from.
type snapshot struct {
	ready   []picker.Endpoint
	pending int      // Idle and Connecting: on their way to READY
	failing []*child // in TransientFailure
	counts  stateCounts
}

// rebuildLocked builds a picker over the children's current states and
// pushes it to the ClientConn.
func (b *lb) rebuildLocked() {
	b.dirty = false
	if b.closed {
		return
	}
	start := time.Now()
	firstConnecting := b.waitForLocalLocked()
	snap := b.snapshotLocked()
	wasSpilled := b.spilled
	b.retirePickerLocked()
	b.cc.UpdateState(b.stateLocked(snap, firstConnecting))
	d := time.Since(start)
	if b.metrics != nil {
		b.metrics.Rebuilt(d, b.spilled && !wasSpilled)
	}
	b.recordRebuild(d, snap.counts, b.spilled && !wasSpilled)
}

// snapshotLocked sorts the children by state.
func (b *lb) snapshotLocked() snapshot {
	var s snapshot
	for _, c := range b.order {
		switch c.state.ConnectivityState {
		case connectivity.Ready:
			s.ready = append(s.ready, picker.Endpoint{
				Picker:   c.state.Picker,
				Weight:   c.attrs.Weight,
				Zone:     c.attrs.Zone,
				Counters: c.counters,
				Done:     c.done,
				State:    c.policyState,
				// pick_first's READY picker returns its one SubConn
				// on every pick; any change makes a new picker, and
				// this one is rebuilt.
				Fixed: true,
			})
		case connectivity.TransientFailure:
			s.failing = append(s.failing, c)
		default:
			s.pending++
		}
		s.counts[c.stateIndexLocked()]++
	}
	return s
}

// retirePickerLocked folds the picks of the picker retired before into the
// counters, and retires the current one. A pick made on the picker retired
// before, after this, is lost.
func (b *lb) retirePickerLocked() {
	picker.Picks(b.retired, func(e *picker.Endpoint, n uint64) { e.Counters.AddPicks(n) })
	b.retired, b.current = b.current, nil
}

// stateLocked is the state to push for snap: a picker over the selected
// ready endpoints; else one that queues picks while endpoints connect;
// else one that fails them, saying why.
func (b *lb) stateLocked(snap snapshot, firstConnecting int) balancer.State {
	b.spilled = false
	var sel picker.Selection
	if len(snap.ready) > 0 {
		sel = picker.Select(snap.ready, b.cfg.LocalZone, b.cfg.LocalZoneMinReady, firstConnecting)
	}
	switch {
	case len(sel.Endpoints) > 0:
		b.spilled = sel.Spilled
		b.current = b.policy.algorithm(b.cfg.params).NewPicker(sel.Endpoints, b.shared)
		return balancer.State{ConnectivityState: connectivity.Ready, Picker: b.current}
	case snap.pending > 0:
		// Picks wait for a child to become ready, or for the local zone.
		return balancer.State{ConnectivityState: connectivity.Connecting, Picker: b.failPickerLocked("queued", balancer.ErrNoSubConnAvailable)}
	default:
		return balancer.State{ConnectivityState: connectivity.TransientFailure, Picker: b.failPickerLocked("unavailable", b.unavailableLocked(snap.failing))}
	}
}

// failPickerLocked returns a picker that fails every pick with err,
// counting it as reason.
func (b *lb) failPickerLocked(reason string, err error) *failPicker {
	p := &failPicker{err: err, recorder: b.cc.MetricsRecorder(), labels: [3]string{b.target, b.policy.name, reason}}
	if b.metrics != nil {
		p.count = b.metrics.QueuedPicks()
		if reason == "unavailable" {
			p.count = b.metrics.UnavailablePicks()
		}
	}
	return p
}

// failPicker fails every pick with err, counting them in count when it is
// set and in grpc's metrics recorder.
type failPicker struct {
	err      error
	count    prometheus.Counter
	recorder estats.MetricsRecorder
	labels   [3]string // target, policy, reason
}

func (p *failPicker) Pick(balancer.PickInfo) (balancer.PickResult, error) {
	if p.count != nil {
		p.count.Inc()
	}
	if p.recorder != nil {
		pickFailuresMetric.Record(p.recorder, 1, p.labels[:]...)
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
		e.State = endpointStates[c.stateIndexLocked()]
		if b.policy.tracks.Has(picker.Inflight) {
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
