package load

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	_ "google.golang.org/grpc/balancer/leastrequest" // least_request_experimental
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/peer"
	grpcresolver "google.golang.org/grpc/resolver"

	etcdlb "github.com/etcdlb/etcdlb/balancer"
	"github.com/etcdlb/etcdlb/endpoint"
	"github.com/etcdlb/etcdlb/registry"
	"github.com/etcdlb/etcdlb/resolver"
	"github.com/etcdlb/etcdlb/resolver/static"
)

// Policy is a load-balancing policy as a client's service config names it.
type Policy struct {
	Name string
	// Ours is true for etcdlb's policies, which read zones and weights.
	Ours bool
	// Weights is how an etcdlb policy's picks follow the weights;
	// WeightsIgnored for grpc-go's.
	Weights etcdlb.Weights
	// CountsInflight: an etcdlb policy that picks by the calls in flight.
	CountsInflight bool
}

// Policies are the policies every scenario runs: etcdlb's, from its table,
// then grpc-go's round_robin, least_request_experimental and pick_first.
var Policies = append(etcdlbPolicies(),
	Policy{Name: "round_robin"},
	Policy{Name: "least_request_experimental"},
	Policy{Name: "pick_first"},
)

func etcdlbPolicies() []Policy {
	var ps []Policy
	for _, p := range etcdlb.Policies() {
		ps = append(ps, Policy{Name: p.Name, Ours: true, Weights: p.Weights, CountsInflight: p.CountsInflight})
	}
	return ps
}

// ServiceConfig is the client's service config for p, with the client in
// localZone (read by etcdlb's policies only).
func (p Policy) ServiceConfig(localZone string) string {
	cfg := "{}"
	switch {
	case p.Ours && localZone != "":
		cfg = fmt.Sprintf(`{"localZone":%q}`, localZone)
	case p.Name == "least_request_experimental":
		cfg = `{"choiceCount":2}`
	}
	return fmt.Sprintf(`{"loadBalancingConfig":[{%q:%s}]}`, p.Name, cfg)
}

// Env is what a scenario's events act on while it runs.
type Env struct {
	Backends []*Backend
	// Etcd is the etcd client of a scenario with Etcd set, and Service the
	// service its backends are registered under.
	Etcd    *clientv3.Client
	Service string

	mu    sync.Mutex
	notes map[string]float64

	// A kill seen from the client (Scenario.TrackKill): the calls sent
	// to killAddr that were in flight between killStart and killEnd.
	killStart, killEnd atomic.Int64
	killAddr           atomic.Pointer[string]
	onKilled           atomic.Int64
}

// KillStarted notes that the backend at addr is being killed from now.
func (e *Env) KillStarted(addr string) {
	e.killAddr.Store(&addr)
	e.killStart.Store(time.Now().UnixNano())
}

// KillDone notes that the kill is over: the backend's connections are closed.
func (e *Env) KillDone() { e.killEnd.Store(time.Now().UnixNano()) }

// ended counts a call that started at start (Unix ns), was sent to addr
// and ends now, if it was in flight on the killed backend while it was
// killed.
func (e *Env) ended(start int64, addr net.Addr) {
	ks := e.killStart.Load()
	if ks == 0 || addr == nil || time.Now().UnixNano() < ks {
		return
	}
	if ke := e.killEnd.Load(); ke != 0 && start >= ke {
		return
	}
	if a := e.killAddr.Load(); a != nil && *a == addr.String() {
		e.onKilled.Add(1)
	}
}

// Note keeps a number measured during the run, for the scenario's Measure.
func (e *Env) Note(name string, v float64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.notes == nil {
		e.notes = map[string]float64{}
	}
	e.notes[name] = v
}

func (e *Env) note(name string) (float64, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	v, ok := e.notes[name]
	return v, ok
}

// Event is something a scenario does to its backends mid-run.
type Event struct {
	// At is when, as a fraction of the run's duration.
	At   float64
	Name string
	Do   func(ctx context.Context, e *Env) error
}

// Metric is a scenario-specific measurement of one run.
type Metric struct {
	Name  string
	Value float64
	Unit  string
	// Note says why there is no value or how to read it.
	Note string
}

func (m Metric) String() string {
	if m.Note != "" && m.Unit == "" {
		return m.Name + ": " + m.Note
	}
	s := fmt.Sprintf("%s: %s %s", m.Name, trimFloat(m.Value), m.Unit)
	if m.Note != "" {
		s += " (" + m.Note + ")"
	}
	return strings.TrimSpace(s)
}

func trimFloat(v float64) string {
	switch {
	case v == float64(int64(v)):
		return fmt.Sprintf("%d", int64(v))
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

// Scenario is one situation run for every policy.
type Scenario struct {
	ID    string // short, for file and benchmark names
	Title string
	// Backends are started fresh for every policy.
	Backends []BackendSpec
	// Concurrency > 0 runs a closed loop with that many workers; otherwise
	// Rate calls a second are sent open loop.
	Concurrency int
	Rate        float64
	Duration    time.Duration
	// LocalZone is the client's zone, given to etcdlb's policies.
	LocalZone string
	// WaitForReady makes every call wait for a ready backend instead of
	// failing when none is.
	WaitForReady bool
	// Etcd registers the backends in etcd (registry.Register) and resolves
	// them with resolver.NewBuilder; otherwise resolver/static serves them.
	Etcd   bool
	Events []Event
	// TrackKill has every call note which backend it was sent to, so that
	// the calls in flight on a backend killed with Env.MarkKill are known.
	TrackKill bool
	// Rounds > 1 (RunAll): the scenario runs in that many rounds, every
	// policy in each, and each policy's rounds are added up.
	Rounds int
	// Measure works out the scenario's own metrics of a run.
	Measure func(r *Result) []Metric
}

// Load describes the generator, for the report.
func (s *Scenario) Load() string {
	if s.Concurrency > 0 {
		return fmt.Sprintf("closed loop, %d workers, %v", s.Concurrency, s.Duration)
	}
	return fmt.Sprintf("open loop, %.0f calls/s, %v", s.Rate, s.Duration)
}

// Result is one run of a scenario with one policy.
type Result struct {
	Scenario *Scenario
	Policy   Policy
	Stats    *Stats
	// Calls is each backend's count of calls received during the run.
	Calls []int64
	// Timeline counts, per backend, the calls it received in each 10 ms
	// window; Errors counts the failed calls by when they finished.
	Timeline *Timeline
	Errors   *Timeline
	// EventAt is when each event happened, from the run's start.
	EventAt []time.Duration
	// Span is how long the (first) run lasted: what Timeline covers.
	Span    time.Duration
	Metrics []Metric
	Env     *Env
}

// RPS is the successful calls a second.
func (r *Result) RPS() float64 { return float64(r.Stats.OK.Load()) / r.Stats.Elapsed.Seconds() }

// Shares is each backend's share of the calls, 0 to 1.
func (r *Result) Shares() []float64 {
	var total int64
	for _, c := range r.Calls {
		total += c
	}
	s := make([]float64, len(r.Calls))
	for i, c := range r.Calls {
		if total > 0 {
			s[i] = float64(c) / float64(total)
		}
	}
	return s
}

// Options are shared by the runs of a benchmark.
type Options struct {
	// Etcd is the client of the etcd that scenarios with Etcd use.
	Etcd *clientv3.Client
	// Scale multiplies every scenario's duration (a short run: 0.2).
	Scale float64
	// CallTimeout bounds each call; 5s when 0.
	CallTimeout time.Duration
}

const timelineWindow = 10 * time.Millisecond

var runSeq struct {
	sync.Mutex
	n int
}

// Run runs sc with policy p: fresh backends, a fresh client, a warm-up,
// then the measured load with the scenario's events at their times.
func Run(ctx context.Context, sc *Scenario, p Policy, opt Options) (_ *Result, err error) {
	scale, callTimeout := opt.Scale, opt.CallTimeout
	if scale <= 0 {
		scale = 1
	}
	if callTimeout <= 0 {
		callTimeout = 5 * time.Second
	}
	env := &Env{}
	defer env.stopBackends()
	eps, err := env.startBackends(sc.Backends)
	if err != nil {
		return nil, err
	}
	rb, target, unregister, err := env.resolve(ctx, sc, p, opt.Etcd, eps)
	if err != nil {
		return nil, err
	}
	defer unregister()
	conn, err := dial(target, rb, p.ServiceConfig(sc.LocalZone))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if err := warmUp(ctx, conn, env.Backends, p, sc); err != nil {
		return nil, err
	}
	r := newResult(sc, p, env, time.Duration(float64(sc.Duration)*scale), callTimeout)
	if err := r.drive(ctx, env.caller(conn, sc, callTimeout)); err != nil {
		return r, err
	}
	if sc.Measure != nil {
		r.Metrics = sc.Measure(r)
	}
	return r, ctx.Err()
}

// startBackends starts a backend for each spec and returns their
// endpoints; stopBackends stops them.
func (e *Env) startBackends(specs []BackendSpec) ([]grpcresolver.Endpoint, error) {
	var eps []grpcresolver.Endpoint
	for i, spec := range specs {
		b, err := StartBackend(spec, i)
		if err != nil {
			return nil, err
		}
		e.Backends = append(e.Backends, b)
		eps = append(eps, endpoint.New(b.Addr, endpoint.Attrs{Weight: spec.Weight, Zone: spec.Zone}))
	}
	return eps, nil
}

func (e *Env) stopBackends() {
	for _, b := range e.Backends {
		b.Stop()
	}
}

// resolve returns the resolver and target the client dials: the backends
// registered in etcd when sc asks for it (unregister undoes that), else a
// static resolver of eps.
func (e *Env) resolve(ctx context.Context, sc *Scenario, p Policy, etcd *clientv3.Client, eps []grpcresolver.Endpoint) (
	_ grpcresolver.Builder, target string, unregister func(), _ error) {
	if !sc.Etcd {
		return static.New("load", eps...), "load:///" + sc.ID, func() {}, nil
	}
	if etcd == nil {
		return nil, "", nil, fmt.Errorf("load: scenario %s needs etcd and Options.Etcd is nil", sc.ID)
	}
	runSeq.Lock()
	runSeq.n++
	e.Service = fmt.Sprintf("load-%s-%s-%d", sc.ID, p.Name, runSeq.n)
	runSeq.Unlock()
	e.Etcd = etcd
	quiet := resolver.WithLogger(slog.New(slog.DiscardHandler))
	var regs []*registry.Registrar
	unregister = func() {
		for _, reg := range regs {
			reg.Close()
		}
	}
	for _, b := range e.Backends {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		reg, err := registry.Register(rctx, etcd, registry.Registration{
			Service: e.Service, Addr: b.Addr, Weight: b.Spec.Weight, Zone: b.Spec.Zone},
			registry.WithLogger(slog.New(slog.DiscardHandler)))
		cancel()
		if err != nil {
			unregister()
			return nil, "", nil, fmt.Errorf("load: register %s: %w", b.Spec.Name, err)
		}
		regs = append(regs, reg)
	}
	return resolver.NewBuilder(etcd, quiet), "etcd:///" + e.Service, unregister, nil
}

// dial is the client of a run, with serviceConfig.
func dial(target string, rb grpcresolver.Builder, serviceConfig string) (*grpc.ClientConn, error) {
	conn, err := grpc.NewClient(target, grpc.WithResolvers(rb),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		// Reconnect within 0.6 s when a stopped backend comes back, rather
		// than after grpc's default backoff of up to 2 minutes; the same
		// for every policy. Scenario 4 asks for traffic back in zone a
		// within 1 s of its restart: with a cap of 1 s, an attempt that
		// falls just before the restart makes the next one wait up to
		// 1.2 s (jitter included), and the backoff, not the policy,
		// decides the figure (1,169 ms seen once).
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: backoff.Config{
			BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 500 * time.Millisecond,
		}, MinConnectTimeout: time.Second}),
		grpc.WithDefaultServiceConfig(serviceConfig))
	if err != nil {
		return nil, fmt.Errorf("load: client: %w", err)
	}
	return conn, nil
}

// caller returns the call the load generator makes: one EmptyCall, bounded
// by callTimeout, noting where it went when sc tracks a kill.
func (e *Env) caller(conn *grpc.ClientConn, sc *Scenario, callTimeout time.Duration) func(context.Context) error {
	client := testgrpc.NewTestServiceClient(conn)
	wfr := grpc.WaitForReady(sc.WaitForReady)
	return func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, callTimeout)
		defer cancel()
		if !sc.TrackKill {
			_, err := client.EmptyCall(ctx, &testpb.Empty{}, wfr)
			return err
		}
		var pr peer.Peer
		start := time.Now().UnixNano()
		_, err := client.EmptyCall(ctx, &testpb.Empty{}, wfr, grpc.Peer(&pr))
		e.ended(start, pr.Addr)
		return err
	}
}

// newResult is the result of running sc for dur, with its timelines
// started now; it covers the calls still in flight at the end.
func newResult(sc *Scenario, p Policy, env *Env, dur, callTimeout time.Duration) *Result {
	scaled := *sc
	scaled.Duration = dur
	r := &Result{Scenario: &scaled, Policy: p, Env: env, EventAt: make([]time.Duration, len(sc.Events))}
	start := time.Now()
	span := dur + callTimeout + time.Second
	r.Timeline = NewTimeline(start, timelineWindow, span, len(env.Backends))
	r.Errors = NewTimeline(start, timelineWindow, span, 1)
	return r
}

// drive sends the scenario's load with call while its events run, and
// counts each backend's calls; it returns the events' error.
func (r *Result) drive(ctx context.Context, call func(context.Context) error) error {
	sc, env, start := r.Scenario, r.Env, r.Timeline.Start
	for _, b := range env.Backends {
		b.Count(r.Timeline)
	}
	obs := func(intended time.Time, lat time.Duration, err error) {
		if err != nil {
			r.Errors.Add(0, intended.Add(lat))
		}
	}
	evDone := make(chan error, 1)
	evCtx, stopEvents := context.WithCancel(ctx)
	go func() { evDone <- runEvents(evCtx, sc.Events, start, sc.Duration, env, r.EventAt) }()
	lim := Limit{Duration: sc.Duration}
	if sc.Concurrency > 0 {
		r.Stats = ClosedLoop(ctx, sc.Concurrency, lim, call, obs)
	} else {
		r.Stats = OpenLoop(ctx, sc.Rate, 20000, lim, call, obs)
	}
	r.Span = r.Stats.Elapsed
	stopEvents()
	evErr := <-evDone
	for _, b := range env.Backends {
		b.Count(nil)
	}
	r.Calls = make([]int64, len(env.Backends))
	for i := range r.Calls {
		r.Calls[i] = r.Timeline.Sum(i, 0, r.Timeline.Windows())
	}
	return evErr
}

func runEvents(ctx context.Context, evs []Event, start time.Time, dur time.Duration, env *Env, at []time.Duration) error {
	for i, ev := range evs {
		due := start.Add(time.Duration(ev.At * float64(dur)))
		t := time.NewTimer(time.Until(due))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil
		}
		at[i] = time.Since(start)
		if err := ev.Do(ctx, env); err != nil {
			return fmt.Errorf("load: event %q: %w", ev.Name, err)
		}
	}
	return nil
}

// warmUp connects the client and makes calls until every backend has
// served one (the one backend pick_first uses), for at most 10 seconds.
func warmUp(ctx context.Context, conn *grpc.ClientConn, bs []*Backend, p Policy, sc *Scenario) error {
	conn.Connect()
	client := testgrpc.NewTestServiceClient(conn)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		ClosedLoop(cctx, 8, Limit{Requests: int64(8 * len(bs))}, func(ctx context.Context) error {
			_, err := client.EmptyCall(ctx, &testpb.Empty{}, grpc.WaitForReady(true))
			return err
		}, nil)
		cancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// Backends the policy is meant to use: every one, or its local
		// zone's for etcdlb's policies.
		all, any := true, false
		for _, b := range bs {
			if sc.LocalZone == "" || !p.Ours || b.Spec.Zone == sc.LocalZone {
				all = all && b.Calls() > 0
			}
			any = any || b.Calls() > 0
		}
		if all || (p.Name == "pick_first" && any) {
			return nil
		}
	}
	return fmt.Errorf("load: %s/%s: warm-up: not every backend got a call in 10s", sc.ID, p.Name)
}

// RunAll runs every scenario with every policy, the policies of a scenario
// one after the other; a scenario with Rounds > 1 runs that many rounds, in
// a rotated order of policies, so that a noisy moment on the machine does
// not fall on one policy only. progress, if not nil, sees each run.
func RunAll(ctx context.Context, scs []*Scenario, ps []Policy, opt Options, progress func(*Result)) (Results, error) {
	var rs Results
	for _, sc := range scs {
		byPolicy := map[string]*Result{}
		for round := range max(sc.Rounds, 1) {
			for i := range ps {
				p := ps[(i+round)%len(ps)]
				r, err := Run(ctx, sc, p, opt)
				if err != nil {
					return rs, fmt.Errorf("%s/%s: %w", sc.ID, p.Name, err)
				}
				if progress != nil {
					progress(r)
				}
				if acc := byPolicy[p.Name]; acc != nil {
					acc.add(r)
				} else {
					byPolicy[p.Name] = r
				}
			}
		}
		for _, p := range ps {
			rs = append(rs, byPolicy[p.Name])
		}
	}
	return rs, nil
}

// add adds another round of the same scenario and policy to r. The
// timeline and events stay those of r's first round.
func (r *Result) add(o *Result) {
	r.Stats.Hist.Merge(&o.Stats.Hist)
	r.Stats.OK.Add(o.Stats.OK.Load())
	r.Stats.Errors.Add(o.Stats.Errors.Load())
	r.Stats.Dropped.Add(o.Stats.Dropped.Load())
	r.Stats.Elapsed += o.Stats.Elapsed
	for i := range r.Calls {
		r.Calls[i] += o.Calls[i]
	}
	r.Metrics = append(r.Metrics, o.Metrics...)
}
