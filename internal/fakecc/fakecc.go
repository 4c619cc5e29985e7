// Package fakecc is a fake balancer.ClientConn for unit tests and
// benchmarks of load-balancing policies: it makes SubConns that connect
// without a network and reports every picker the policy pushes.
//
// As in grpc-go, SubConn state changes are delivered one at a time on a
// goroutine of the ClientConn's own, never inside the call that caused them.
package fakecc

import (
	"fmt"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/connectivity"
	estats "google.golang.org/grpc/experimental/stats"
	"google.golang.org/grpc/resolver"
)

// ClientConn is a fake balancer.ClientConn. Create it with New.
type ClientConn struct {
	balancer.ClientConn // nil; embedded as grpc-go requires

	// AutoReady makes every SubConn report CONNECTING then READY when the
	// policy asks it to connect. Set it before the policy is built.
	AutoReady bool
	// Recorder, when set, is the MetricsRecorder the policy records on.
	// Set it before the policy is built.
	Recorder *Recorder

	newSubConns atomic.Int64
	stop        chan struct{}
	stopOnce    sync.Once

	// The callback queue is unbounded: a policy may call Connect while it
	// holds a lock that an earlier callback in the queue waits for.
	workMu  sync.Mutex
	work    []func()
	pending chan struct{} // one token while work is not empty

	mu       sync.Mutex
	state    balancer.State
	updates  int
	changed  chan struct{} // closed and replaced on every UpdateState
	subConns []*SubConn
}

// New returns a ClientConn whose callbacks run on a goroutine until Close.
func New() *ClientConn {
	cc := &ClientConn{stop: make(chan struct{}), pending: make(chan struct{}, 1), changed: make(chan struct{})}
	go cc.serve()
	return cc
}

func (cc *ClientConn) serve() {
	for {
		select {
		case <-cc.pending:
		case <-cc.stop:
			return
		}
		cc.workMu.Lock()
		work := cc.work
		cc.work = nil
		cc.workMu.Unlock()
		for _, f := range work {
			f()
		}
	}
}

// Close stops delivering SubConn state changes.
func (cc *ClientConn) Close() { cc.stopOnce.Do(func() { close(cc.stop) }) }

func (cc *ClientConn) schedule(f func()) {
	cc.workMu.Lock()
	cc.work = append(cc.work, f)
	cc.workMu.Unlock()
	select {
	case cc.pending <- struct{}{}:
	default:
	}
}

// NewSubConn records a new SubConn for addrs.
func (cc *ClientConn) NewSubConn(addrs []resolver.Address, opts balancer.NewSubConnOptions) (balancer.SubConn, error) {
	if len(addrs) == 0 {
		return nil, fmt.Errorf("fakecc: NewSubConn with no address")
	}
	cc.newSubConns.Add(1)
	sc := &SubConn{cc: cc, Addr: addrs[0].Addr, listener: opts.StateListener}
	cc.mu.Lock()
	cc.subConns = append(cc.subConns, sc)
	cc.mu.Unlock()
	return sc, nil
}

// NewSubConnCount is how many SubConns the policy has created.
func (cc *ClientConn) NewSubConnCount() int64 { return cc.newSubConns.Load() }

// SubConns returns every SubConn created so far, shut down or not.
func (cc *ClientConn) SubConns() []*SubConn {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return append([]*SubConn(nil), cc.subConns...)
}

// SubConn returns the newest SubConn for addr, or nil.
func (cc *ClientConn) SubConn(addr string) *SubConn {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	for i := len(cc.subConns) - 1; i >= 0; i-- {
		if cc.subConns[i].Addr == addr {
			return cc.subConns[i]
		}
	}
	return nil
}

// UpdateState records the policy's new state and picker.
func (cc *ClientConn) UpdateState(s balancer.State) {
	cc.mu.Lock()
	cc.state = s
	cc.updates++
	close(cc.changed)
	cc.changed = make(chan struct{})
	cc.mu.Unlock()
}

// State returns the last state the policy pushed, how many it has pushed,
// and a channel that is closed when it pushes another.
func (cc *ClientConn) State() (balancer.State, int, <-chan struct{}) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return cc.state, cc.updates, cc.changed
}

// RemoveSubConn is deprecated in grpc-go; policies call SubConn.Shutdown.
func (cc *ClientConn) RemoveSubConn(balancer.SubConn) {}

// UpdateAddresses is deprecated in grpc-go.
func (cc *ClientConn) UpdateAddresses(balancer.SubConn, []resolver.Address) {}

// ResolveNow does nothing.
func (cc *ClientConn) ResolveNow(resolver.ResolveNowOptions) {}

// Target returns a fixed target.
func (cc *ClientConn) Target() string { return "fake:///test" }

// MetricsRecorder returns cc.Recorder, or one that drops everything when
// it is nil.
func (cc *ClientConn) MetricsRecorder() estats.MetricsRecorder {
	if cc.Recorder != nil {
		return cc.Recorder
	}
	return noopRecorder{}
}

// SubConn is a fake balancer.SubConn.
type SubConn struct {
	balancer.SubConn // nil; embedded as grpc-go requires

	cc       *ClientConn
	Addr     string
	listener func(balancer.SubConnState)

	connects atomic.Int64
	shutdown atomic.Bool
}

// Connect starts connecting; with AutoReady the SubConn becomes READY.
func (sc *SubConn) Connect() {
	sc.connects.Add(1)
	if sc.cc.AutoReady {
		sc.SetState(connectivity.Connecting, nil)
		sc.SetState(connectivity.Ready, nil)
	}
}

// Connects is how many times the policy asked this SubConn to connect.
func (sc *SubConn) Connects() int64 { return sc.connects.Load() }

// IsShutdown tells whether the policy shut this SubConn down.
func (sc *SubConn) IsShutdown() bool { return sc.shutdown.Load() }

// SetState reports a connectivity state to the policy, asynchronously, as
// grpc-go does. err is the connection error of TRANSIENT_FAILURE.
func (sc *SubConn) SetState(s connectivity.State, err error) {
	sc.cc.schedule(func() {
		if sc.listener != nil && !sc.shutdown.Load() {
			sc.listener(balancer.SubConnState{ConnectivityState: s, ConnectionError: err})
		}
	})
}

// Shutdown marks the SubConn shut down and reports SHUTDOWN.
func (sc *SubConn) Shutdown() {
	if sc.shutdown.Swap(true) {
		return
	}
	sc.cc.schedule(func() {
		if sc.listener != nil {
			sc.listener(balancer.SubConnState{ConnectivityState: connectivity.Shutdown})
		}
	})
}

// UpdateAddresses is deprecated in grpc-go.
func (sc *SubConn) UpdateAddresses([]resolver.Address) {}

// GetOrBuildProducer builds nothing.
func (sc *SubConn) GetOrBuildProducer(balancer.ProducerBuilder) (balancer.Producer, func()) {
	return nil, func() {}
}

// RegisterHealthListener reports the SubConn healthy at once.
func (sc *SubConn) RegisterHealthListener(f func(balancer.SubConnState)) {
	sc.cc.schedule(func() { f(balancer.SubConnState{ConnectivityState: connectivity.Ready}) })
}

// Recorder is a MetricsRecorder that keeps what is recorded: the sum of a
// count's increments, a gauge's last value, the number of a histogram's
// observations, by metric name and label values.
type Recorder struct {
	noopRecorder
	mu     sync.Mutex
	values map[string]float64
}

// NewRecorder returns an empty Recorder.
func NewRecorder() *Recorder { return &Recorder{values: map[string]float64{}} }

// Value returns what was recorded on the metric name with exactly labels,
// and whether anything was.
func (r *Recorder) Value(name string, labels ...string) (float64, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	v, ok := r.values[recorderKey(name, labels)]
	return v, ok
}

func recorderKey(name string, labels []string) string {
	return fmt.Sprintf("%s%q", name, labels)
}

func (r *Recorder) record(d *estats.MetricDescriptor, labels []string, f func(old float64) float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := recorderKey(string(d.Name), labels)
	r.values[k] = f(r.values[k])
}

func (r *Recorder) RecordInt64Count(h *estats.Int64CountHandle, v int64, labels ...string) {
	r.record(h.Descriptor(), labels, func(old float64) float64 { return old + float64(v) })
}

func (r *Recorder) RecordFloat64Count(h *estats.Float64CountHandle, v float64, labels ...string) {
	r.record(h.Descriptor(), labels, func(old float64) float64 { return old + v })
}

func (r *Recorder) RecordInt64Histo(h *estats.Int64HistoHandle, _ int64, labels ...string) {
	r.record(h.Descriptor(), labels, func(old float64) float64 { return old + 1 })
}

func (r *Recorder) RecordFloat64Histo(h *estats.Float64HistoHandle, _ float64, labels ...string) {
	r.record(h.Descriptor(), labels, func(old float64) float64 { return old + 1 })
}

func (r *Recorder) RecordInt64Gauge(h *estats.Int64GaugeHandle, v int64, labels ...string) {
	r.record(h.Descriptor(), labels, func(float64) float64 { return float64(v) })
}

type noopRecorder struct{ estats.MetricsRecorder }

func (noopRecorder) RecordInt64Count(*estats.Int64CountHandle, int64, ...string)             {}
func (noopRecorder) RecordFloat64Count(*estats.Float64CountHandle, float64, ...string)       {}
func (noopRecorder) RecordInt64Histo(*estats.Int64HistoHandle, int64, ...string)             {}
func (noopRecorder) RecordFloat64Histo(*estats.Float64HistoHandle, float64, ...string)       {}
func (noopRecorder) RecordInt64Gauge(*estats.Int64GaugeHandle, int64, ...string)             {}
func (noopRecorder) RecordInt64UpDownCount(*estats.Int64UpDownCountHandle, int64, ...string) {}
func (noopRecorder) RegisterAsyncReporter(estats.AsyncMetricReporter, ...estats.AsyncMetric) func() {
	return func() {}
}
