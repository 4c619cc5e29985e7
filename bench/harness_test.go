package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	v3orcapb "github.com/cncf/xds/go/xds/data/orca/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/balancer/leastrequest"
	"google.golang.org/grpc/balancer/pickfirst"
	"google.golang.org/grpc/balancer/roundrobin"
	"google.golang.org/grpc/balancer/weightedroundrobin"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/serviceconfig"

	etcdlb "github.com/etcdlb/etcdlb/balancer"
	"github.com/etcdlb/etcdlb/endpoint"
	"github.com/etcdlb/etcdlb/internal/fakecc"
	"github.com/etcdlb/etcdlb/internal/heap"
	"github.com/etcdlb/etcdlb/internal/pickerinfo"
	"github.com/etcdlb/etcdlb/internal/workers"
	"github.com/etcdlb/etcdlb/metrics"
)

// policyCase is one policy under benchmark, built by its registered name.
type policyCase struct {
	name   string // the name it is registered under
	config string // JSON, given to the builder's ParseConfig if it has one
	// weighted: picks must follow the endpoints' weights (1..4), checked
	// before the benchmark starts.
	weighted bool
	// single: the policy connects to and picks one endpoint (pick_first).
	single bool
	// grpc: one of grpc-go's policies built on endpointsharding, whose
	// time to READY grows with N²; -short skips it at N = 10,000.
	grpc bool
	// metrics: the resolver state carries a metrics.Metrics, so the policy
	// counts every pick; the case is named name+"+metrics".
	metrics bool
}

// label names the case in benchmark and test names.
func (pc policyCase) label() string {
	if pc.metrics {
		return pc.name + "+metrics"
	}
	return pc.name
}

var policies = append(etcdlbCases(),
	policyCase{name: roundrobin.Name, config: `{}`, grpc: true},
	// Weights come from the ORCA load reports passed to Done: no blackout,
	// recomputed every 100 ms (grpc-go's minimum).
	policyCase{name: weightedroundrobin.Name, config: `{"blackoutPeriod":"0s","weightUpdatePeriod":"0.1s","weightExpirationPeriod":"3600s"}`, weighted: true, grpc: true},
	policyCase{name: leastrequest.Name, config: `{"choiceCount":2}`, grpc: true},
	policyCase{name: pickfirst.Name, config: `{"shuffleAddressList":false}`, single: true},
)

// etcdlbCases are etcdlb's policies, from its table, with their default
// configs (least-inflight's choiceCount is 2, as least_request_experimental's
// above), then each again with metrics.
func etcdlbCases() []policyCase {
	var cases []policyCase
	for _, metrics := range []bool{false, true} {
		for _, p := range etcdlb.Policies() {
			cases = append(cases, policyCase{name: p.Name, config: `{"localZoneMinReady":1}`,
				weighted: p.Weights == etcdlb.WeightsExact, metrics: metrics})
		}
	}
	return cases
}

// Endpoint i has weight 1..4 cycling and one of two zones.
var zones = [2]string{"eu-1a", "eu-1b"}

func weightOf(i int) uint32 { return uint32(i%4 + 1) }

func addrOf(i int) string {
	return fmt.Sprintf("10.%d.%d.%d:8080", i>>16&255, i>>8&255, i&255)
}

// resolverState is what a resolver would push for n endpoints: each carries
// its weight (grpc's weight attribute, which weighted_round_robin ignores)
// and its zone, and the addresses are listed flat too, as etcdlb's resolver
// does.
func resolverState(n int, withMetrics bool) resolver.State {
	s := resolver.State{
		Endpoints: make([]resolver.Endpoint, n),
		Addresses: make([]resolver.Address, n),
	}
	for i := range n {
		s.Endpoints[i] = endpoint.New(addrOf(i), endpoint.Attrs{Weight: weightOf(i), Zone: zones[i%2]})
		s.Addresses[i] = s.Endpoints[i].Addresses[0]
	}
	if withMetrics {
		m, err := metrics.New(prometheus.NewRegistry())
		if err != nil {
			panic(err) // a fresh registry cannot hold etcdlb's collectors already
		}
		s = metrics.Attach(s, m)
	}
	return s
}

// doneInfos are the DoneInfos that end an RPC on an endpoint, one for each
// weight: endpoint i's is doneInfos[i%4]. They carry an ORCA load report
// whose qps/utilization is proportional to the weight, so that
// weighted_round_robin, which learns its weights from these reports,
// converges to the same weights as etcdlb_weighted.
var doneInfos = func() (d [4]balancer.DoneInfo) {
	for i := range d {
		d[i].ServerLoad = &v3orcapb.OrcaLoadReport{
			CpuUtilization: 0.5,
			RpsFractional:  100 * float64(weightOf(i)),
		}
	}
	return d
}()

// harness is a fake ClientConn around one policy instance. It extends
// fakecc.ClientConn with what the benchmarks need:
//   - calls into the policy (resolver updates, SubConn and health state
//     changes, Close) are serialized, as grpc-go's ClientConn does;
//   - every SubConn knows the index of its endpoint, so that a pick's Done
//     gets that endpoint's load report with no map lookup;
//   - the time of every state update is recorded, and so is how many
//     SubConn READY and health updates the policy has consumed.
type harness struct {
	*fakecc.ClientConn

	// Immutable after newHarness.
	pc    policyCase
	n     int
	index map[string]int // address → endpoint index
	state resolver.State
	// subConns holds the SubConns, subConns[i] for endpoint i, in one
	// array, so that a pick's endpoint index is found from the SubConn's
	// address without reading the SubConn: the harness must not add cache
	// misses that grow with N to the measured Pick+Done.
	subConns []subConn

	mu     sync.Mutex // serializes calls into bal
	bal    balancer.Balancer
	closed bool

	// Accessed atomically.
	rawReady         atomic.Int64 // READY SubConn states the policy consumed
	healthRegistered atomic.Int64
	healthReady      atomic.Int64 // READY health updates the policy consumed

	stMu sync.Mutex
	st   balancer.State
	stAt time.Time     // when st was pushed
	stCh chan struct{} // closed on the next push
}

func newHarness(pc policyCase, n int) *harness {
	h := &harness{
		ClientConn: fakecc.New(),
		pc:         pc,
		n:          n,
		index:      make(map[string]int, n),
		state:      resolverState(n, pc.metrics),
		subConns:   make([]subConn, n),
		stCh:       make(chan struct{}),
	}
	h.AutoReady = true
	for i := range n {
		h.index[addrOf(i)] = i
	}
	return h
}

// build builds the policy by name and parses its config. It does not send
// the resolver state.
func (h *harness) build() (serviceconfig.LoadBalancingConfig, error) {
	bb := balancer.Get(h.pc.name)
	if bb == nil {
		return nil, fmt.Errorf("policy %q is not registered", h.pc.name)
	}
	var cfg serviceconfig.LoadBalancingConfig
	if p, ok := bb.(balancer.ConfigParser); ok {
		var err error
		if cfg, err = p.ParseConfig(json.RawMessage(h.pc.config)); err != nil {
			return nil, fmt.Errorf("%s: ParseConfig(%s): %v", h.pc.name, h.pc.config, err)
		}
	}
	h.bal = bb.Build(h, balancer.BuildOptions{})
	return cfg, nil
}

// update sends the resolver state to the policy.
func (h *harness) update(cfg serviceconfig.LoadBalancingConfig) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.bal.UpdateClientConnState(balancer.ClientConnState{ResolverState: h.state, BalancerConfig: cfg})
}

// serialize runs f as a call into the policy, unless it is closed.
func (h *harness) serialize(f func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.closed {
		f()
	}
}

// close closes the policy; state updates still queued in the fake
// ClientConn are dropped.
func (h *harness) close() {
	h.mu.Lock()
	if !h.closed {
		h.closed = true
		if h.bal != nil {
			h.bal.Close()
		}
	}
	h.mu.Unlock()
	h.ClientConn.Close()
}

// UpdateState records the policy's new state and when it was pushed.
func (h *harness) UpdateState(s balancer.State) {
	now := time.Now()
	h.stMu.Lock()
	h.st, h.stAt = s, now
	close(h.stCh)
	h.stCh = make(chan struct{})
	h.stMu.Unlock()
	h.ClientConn.UpdateState(s)
}

func (h *harness) lastState() (balancer.State, time.Time, <-chan struct{}) {
	h.stMu.Lock()
	defer h.stMu.Unlock()
	return h.st, h.stAt, h.stCh
}

// NewSubConn makes a fake SubConn whose state changes reach the policy
// serialized and counted.
func (h *harness) NewSubConn(addrs []resolver.Address, opts balancer.NewSubConnOptions) (balancer.SubConn, error) {
	if len(addrs) == 0 {
		return nil, fmt.Errorf("NewSubConn with no address")
	}
	idx, ok := h.index[addrs[0].Addr]
	if !ok {
		return nil, fmt.Errorf("NewSubConn for unknown address %q", addrs[0].Addr)
	}
	if l := opts.StateListener; l != nil {
		opts.StateListener = func(s balancer.SubConnState) {
			h.serialize(func() { l(s) })
			if s.ConnectivityState == connectivity.Ready {
				h.rawReady.Add(1)
			}
		}
	}
	sc, err := h.ClientConn.NewSubConn(addrs, opts)
	if err != nil {
		return nil, err
	}
	s := &h.subConns[idx]
	if s.SubConn != nil {
		// A second SubConn for the endpoint (none of the benchmarks
		// makes one): it lives outside the array.
		s = new(subConn)
	}
	*s = subConn{SubConn: sc.(*fakecc.SubConn), h: h, idx: idx}
	return s, nil
}

// subConn is a fake SubConn that knows its endpoint's index.
type subConn struct {
	*fakecc.SubConn
	h   *harness
	idx int
}

// RegisterHealthListener reports the SubConn healthy, serialized and counted.
func (sc *subConn) RegisterHealthListener(f func(balancer.SubConnState)) {
	h := sc.h
	h.healthRegistered.Add(1)
	sc.SubConn.RegisterHealthListener(func(s balancer.SubConnState) {
		h.serialize(func() { f(s) })
		if s.ConnectivityState == connectivity.Ready {
			h.healthReady.Add(1)
		}
	})
}

// settled tells whether every SubConn the policy should have connected has
// reported READY (and healthy) to it.
func (h *harness) settled() bool {
	want := int64(h.n)
	if h.pc.single {
		want = 1
	}
	return h.rawReady.Load() >= want && h.healthReady.Load() >= h.healthRegistered.Load()
}

// covers is how many distinct endpoints a ready picker must pick.
func (h *harness) covers() int {
	if h.pc.single {
		return 1
	}
	return h.n
}

var pickInfo = balancer.PickInfo{FullMethodName: "/bench.Service/Call", Ctx: context.Background()}

// pickDone is the benchmarked operation: one Pick, and its Done when it has
// one, with the picked endpoint's load report. The endpoint's index is
// computed from the SubConn's place in subConns rather than read from it
// (the GC does not move heap objects), which would cost a cache miss at
// large N.
func pickDone(p balancer.Picker, subConns []subConn) error {
	r, err := p.Pick(pickInfo)
	if err != nil {
		return err
	}
	if r.Done == nil {
		return nil
	}
	r.Done(doneInfos[indexOf(r.SubConn.(*subConn), subConns)%4])
	return nil
}

// indexOf is sc's endpoint index, computed from where sc is in subConns.
func indexOf(sc *subConn, subConns []subConn) int {
	i := int((uintptr(unsafe.Pointer(sc)) - uintptr(unsafe.Pointer(unsafe.SliceData(subConns)))) / unsafe.Sizeof(subConn{}))
	if uint(i) >= uint(len(subConns)) {
		return sc.idx // not in the array
	}
	return i
}

// pickIndex picks, ends the RPC, and returns the picked endpoint's index.
func (h *harness) pickIndex(p balancer.Picker) (int, error) {
	r, err := p.Pick(pickInfo)
	if err != nil {
		return 0, err
	}
	i := r.SubConn.(*subConn).idx
	if r.Done != nil {
		r.Done(doneInfos[i%4])
	}
	return i, nil
}

// coversAll picks until every endpoint the picker should cover has been
// picked, or gives up after enough picks that a random policy would have
// covered them all many times over.
func (h *harness) coversAll(p balancer.Picker) (bool, error) {
	want := h.covers()
	seen := make([]bool, h.n)
	got := 0
	for range 40*h.n + 100 {
		i, err := h.pickIndex(p)
		if err != nil {
			return false, err
		}
		if !seen[i] {
			seen[i] = true
			if got++; got == want {
				return true, nil
			}
		}
	}
	return false, nil
}

// errTimeout is returned by waitReady when the policy is not ready in time.
var errTimeout = fmt.Errorf("timed out")

// waitReady waits until the policy has pushed a READY picker that covers
// every endpoint, and returns it with the time it was pushed.
func (h *harness) waitReady(deadline time.Time) (balancer.Picker, time.Time, error) {
	// Let the SubConn updates drain first: checking coverage is O(N), and
	// the policies push a picker on (almost) every update.
	for !h.settled() {
		if time.Now().After(deadline) {
			return nil, time.Time{}, errTimeout
		}
		time.Sleep(time.Millisecond)
	}
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	for {
		st, at, changed := h.lastState()
		if st.ConnectivityState == connectivity.Ready {
			ok, err := h.coversAll(st.Picker)
			if err != nil {
				return nil, time.Time{}, fmt.Errorf("%s: READY picker: %v", h.pc.name, err)
			}
			if ok {
				return st.Picker, at, nil
			}
		}
		select {
		case <-changed:
		case <-timer.C:
			return nil, time.Time{}, errTimeout
		}
	}
}

// checkWeights verifies that the picker follows the endpoints' weights: the
// heaviest endpoints get at least 60% of their due share relative to the
// lightest. For weighted_round_robin it waits for the load reports to be
// turned into weights, which happens on a timer.
func (h *harness) checkWeights(p balancer.Picker, deadline time.Time) (float64, error) {
	wmin, wmax := weightOf(0), weightOf(min(h.n, 4)-1)
	want := float64(wmax) / float64(wmin)
	picks := max(20000, 20*h.n)
	for {
		var lo, hi int
		for range picks {
			i, err := h.pickIndex(p)
			if err != nil {
				return 0, err
			}
			switch weightOf(i) {
			case wmin:
				lo++
			case wmax:
				hi++
			}
		}
		ratio := float64(hi) / float64(max(lo, 1))
		if ratio >= 0.6*want {
			return ratio, nil
		}
		if time.Now().After(deadline) {
			return ratio, fmt.Errorf("%s: heaviest endpoints got %.2fx the picks of the lightest, want about %.0fx", h.pc.name, ratio, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// setup is a policy built over n endpoints, ready, with its picker.
type setup struct {
	h      *harness
	picker balancer.Picker
}

// newSetup builds pc over n endpoints and waits for a READY picker covering
// all of them; for weighted policies, until picks follow the weights.
func newSetup(pc policyCase, n int, timeout time.Duration) (*setup, error) {
	h := newHarness(pc, n)
	cfg, err := h.build()
	if err != nil {
		return nil, err
	}
	if err := h.update(cfg); err != nil {
		h.close()
		return nil, fmt.Errorf("%s: UpdateClientConnState: %v", pc.name, err)
	}
	deadline := time.Now().Add(timeout)
	p, _, err := h.waitReady(deadline)
	if err != nil {
		h.close()
		return nil, fmt.Errorf("%s, %d endpoints: no READY picker covering them all: %v", pc.name, n, err)
	}
	if pc.weighted && n > 1 {
		if _, err := h.checkWeights(p, deadline); err != nil {
			h.close()
			return nil, err
		}
	}
	return &setup{h: h, picker: p}, nil
}

func (s *setup) close() { s.h.close() }

// parallelPicker returns the picker to measure with every core picking.
// For a policy that moves to striped counters when picks from several
// cores collide (etcdlb's round robin and weighted), that is the striped
// picker: every core picks on the setup's picker, as a busy client's RPCs
// do, until the policy pushes it (within a few picks). It fails after
// timeout.
func (s *setup) parallelPicker(timeout time.Duration) (balancer.Picker, error) {
	if !pickerinfo.Stripes(s.picker) {
		return s.picker, nil
	}
	defer workers.Start(runtime.GOMAXPROCS(0), func() bool {
		st, _, _ := s.h.lastState()
		for range 1000 {
			pickDone(st.Picker, s.h.subConns)
		}
		return true
	})()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		st, _, changed := s.h.lastState()
		if st.ConnectivityState == connectivity.Ready && pickerinfo.Striped(st.Picker) {
			return st.Picker, nil
		}
		select {
		case <-changed:
		case <-timer.C:
			return nil, fmt.Errorf("%s: no striped picker after %v of picks from %d goroutines", s.h.pc.name, timeout, runtime.GOMAXPROCS(0))
		}
	}
}

// fakeSubConnBytes is the heap that the harness and fakecc hold for each
// SubConn (the fake SubConn, its wrapper, the wrapped listeners), which a
// real ClientConn would hold instead; it is subtracted from the policies'
// memory.
func fakeSubConnBytes(n int) float64 {
	h := newHarness(policies[0], n)
	defer h.close()
	scs := make([]balancer.SubConn, n)
	before := heap.Live()
	for i := range n {
		sc, err := h.NewSubConn([]resolver.Address{{Addr: addrOf(i)}}, balancer.NewSubConnOptions{StateListener: func(balancer.SubConnState) {}})
		if err != nil {
			panic(err)
		}
		scs[i] = sc
	}
	after := heap.Live()
	runtime.KeepAlive(scs)
	return float64(after-before) / float64(n)
}
