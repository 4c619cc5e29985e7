package reliability_test

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/stats"

	etcdlb "github.com/etcdlb/etcdlb/balancer"
	"github.com/etcdlb/etcdlb/endpoint"
	"github.com/etcdlb/etcdlb/internal/differential"
	"github.com/etcdlb/etcdlb/internal/embedetcd"
	"github.com/etcdlb/etcdlb/internal/poll"
	"github.com/etcdlb/etcdlb/internal/testserver"
	"github.com/etcdlb/etcdlb/registry"
	etcdlbresolver "github.com/etcdlb/etcdlb/resolver"
)

var reportPath = flag.String("reliability.report", "", "append each scenario's figures line to this file")

// waitTimeout bounds every wait for an event.
const waitTimeout = 30 * time.Second

// callTimeout bounds each call of the load: long enough that only a lost
// call fails, short enough that a hung one shows.
const callTimeout = 5 * time.Second

// policies are the three policies every scenario that compares them runs.
var policies = etcdlb.Names()

// clientPolicies are the policies every scenario dials a client of: etcdlb's,
// and grpc-go's round_robin on the same resolver and servers, the reference
// no etcdlb policy may fail more calls than (checkNoWorse).
var clientPolicies = append(slices.Clip(policies), differential.Reference)

// figures are what a scenario reports, in one fixed format.
type figures struct {
	scenario string
	policy   string // "-" when the scenario is not per policy
	calls    int64
	failed   int64
	recovery time.Duration // 0: not applicable
	extra    string        // more key=value pairs
}

var reportMu sync.Mutex

func report(t testing.TB, f figures) {
	t.Helper()
	rec := "n/a"
	if f.recovery > 0 {
		rec = f.recovery.Round(time.Millisecond).String()
	}
	if f.policy == "" {
		f.policy = "-"
	}
	line := fmt.Sprintf("figures scenario=%s policy=%s calls=%d failed=%d recovery=%s", f.scenario, f.policy, f.calls, f.failed, rec)
	if f.extra != "" {
		line += " " + f.extra
	}
	t.Log(line)
	if *reportPath == "" {
		return
	}
	reportMu.Lock()
	defer reportMu.Unlock()
	fh, err := os.OpenFile(*reportPath, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Errorf("report: %v", err)
		return
	}
	defer fh.Close()
	fmt.Fprintln(fh, line)
}

// env is an embedded etcd and a client for registrations and the operator.
type env struct {
	etcd *embedetcd.Cluster
	cli  *clientv3.Client
	ctx  context.Context
	log  *slog.Logger
}

func newEnv(t *testing.T, opts embedetcd.Options) *env {
	t.Helper()
	c := embedetcd.StartT(t, opts)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	return &env{etcd: c, cli: c.ClientT(t), ctx: ctx, log: testLogger(t, nil)}
}

// newClient is a separate etcd client, as a separate process would have.
func (e *env) newClient(t *testing.T) *clientv3.Client { return e.etcd.ClientT(t) }

// backend is a real gRPC server registered in etcd.
type backend struct {
	*testserver.Server
	service string
	weight  uint32
	ttl     time.Duration
	reg     *registry.Registrar
}

// startBackend starts a server and registers it under service.
func (e *env) startBackend(t *testing.T, service string, weight uint32, ttl time.Duration) *backend {
	t.Helper()
	s, err := testserver.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	b := &backend{Server: s, service: service, weight: weight, ttl: ttl}
	e.register(t, b)
	t.Cleanup(func() { b.reg.Close() })
	return b
}

// startBackends starts one registered backend per weight, and returns them
// and their addresses.
func (e *env) startBackends(t *testing.T, service string, ttl time.Duration, weights ...uint32) ([]*backend, []string) {
	t.Helper()
	var bs []*backend
	var addrs []string
	for _, w := range weights {
		b := e.startBackend(t, service, w, ttl)
		bs = append(bs, b)
		addrs = append(addrs, b.Addr)
	}
	return bs, addrs
}

// underLoad starts a registered backend per weight and a client of each
// policy, waits until every client has every backend, and starts load on
// each client (3 goroutines) for 200 calls.
func (e *env) underLoad(t *testing.T, service string, ttl time.Duration, weights ...uint32) ([]*backend, []string, []*client, []*load) {
	t.Helper()
	bs, addrs := e.startBackends(t, service, ttl, weights...)
	cs := dialAll(t, e.newClient(t), service)
	waitAddrs(t, cs, addrs...)
	ls := startLoads(t, cs, 3)
	waitAllMore(t, ls, 200)
	return bs, addrs, cs, ls
}

// waitRegistered waits until service has n instances in etcd.
func (e *env) waitRegistered(t *testing.T, service string, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(e.ctx, waitTimeout)
	defer cancel()
	for {
		insts, err := registry.List(ctx, e.cli, service)
		if err == nil && len(insts) == n {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("%s has %d of %d instances in etcd after %v: %v", service, len(insts), n, waitTimeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// register (re-)registers b's server.
func (e *env) register(t *testing.T, b *backend) {
	t.Helper()
	ctx, cancel := context.WithTimeout(e.ctx, waitTimeout)
	defer cancel()
	reg, err := registry.Register(ctx, e.cli, registry.Registration{Service: b.service, Addr: b.Addr, Weight: b.weight},
		registry.WithTTL(b.ttl), registry.WithLogger(e.log), registry.WithBackoff(20*time.Millisecond, 500*time.Millisecond))
	if err != nil {
		t.Fatalf("register %s: %v", b.Addr, err)
	}
	b.reg = reg
}

// client is a real grpc.ClientConn to etcd:///service with one policy, with
// a view of what its resolver pushed and a count of the calls in flight per
// backend address.
type client struct {
	policy string
	conn   *grpc.ClientConn
	tc     testgrpc.TestServiceClient
	view   *view
	track  *tracker
}

// dial connects to etcd:///service through cli with policy; serviceConfig,
// when not empty, replaces the default one (which only names the policy).
func dial(t *testing.T, cli *clientv3.Client, service, policy, serviceConfig string, opts ...etcdlbresolver.Option) *client {
	t.Helper()
	if serviceConfig == "" {
		serviceConfig = fmt.Sprintf(`{"loadBalancingConfig":[{%q:{}}]}`, policy)
	}
	opts = append([]etcdlbresolver.Option{etcdlbresolver.WithLogger(testLogger(t, nil)),
		etcdlbresolver.WithBackoff(20*time.Millisecond, 500*time.Millisecond)}, opts...)
	v := newView()
	tr := newTracker()
	conn, err := grpc.NewClient("etcd:///"+service,
		grpc.WithResolvers(viewBuilder{etcdlbresolver.NewBuilder(cli, opts...), v}),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(serviceConfig),
		grpc.WithStatsHandler(tr),
		// Reconnect quickly once a stopped backend is back.
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: backoff.Config{BaseDelay: 50 * time.Millisecond,
			Multiplier: 1.6, MaxDelay: 500 * time.Millisecond}}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.Connect() // leave idle mode: build the resolver now
	return &client{policy: policy, conn: conn, tc: testgrpc.NewTestServiceClient(conn), view: v, track: tr}
}

// dialAll dials one client per policy of clientPolicies.
func dialAll(t *testing.T, cli *clientv3.Client, service string, opts ...etcdlbresolver.Option) []*client {
	var cs []*client
	for _, p := range clientPolicies {
		cs = append(cs, dial(t, cli, service, p, "", opts...))
	}
	return cs
}

// view records the endpoints (address → weight) a ClientConn's resolver last
// pushed. UpdateState returns once the policy has the new state and has
// built its picker, so when the view lacks an address no new call picks it.
type view struct {
	mu      sync.Mutex
	eps     map[string]uint32
	changed chan struct{} // closed and replaced on every push
}

func newView() *view { return &view{changed: make(chan struct{})} }

type viewBuilder struct {
	resolver.Builder
	v *view
}

func (b viewBuilder) Build(target resolver.Target, cc resolver.ClientConn, opts resolver.BuildOptions) (resolver.Resolver, error) {
	return b.Builder.Build(target, viewCC{cc, b.v}, opts)
}

type viewCC struct {
	resolver.ClientConn
	v *view
}

func (c viewCC) UpdateState(s resolver.State) error {
	err := c.ClientConn.UpdateState(s)
	eps := make(map[string]uint32, len(s.Endpoints))
	for _, ep := range s.Endpoints {
		eps[endpoint.Addr(ep)] = endpoint.Get(ep).Weight
	}
	c.v.mu.Lock()
	c.v.eps = eps
	close(c.v.changed)
	c.v.changed = make(chan struct{})
	c.v.mu.Unlock()
	return err
}

// waitFor waits until cond holds for the last pushed endpoints.
func (v *view) waitFor(t testing.TB, what string, cond func(eps map[string]uint32) bool) {
	t.Helper()
	deadline := time.After(waitTimeout)
	for {
		v.mu.Lock()
		ok, ch, eps := cond(v.eps), v.changed, fmt.Sprint(v.eps)
		v.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("timed out after %v waiting for %s; client has %s", waitTimeout, what, eps)
		}
	}
}

// waitAddrs waits until every client has exactly addrs.
func waitAddrs(t testing.TB, cs []*client, addrs ...string) {
	t.Helper()
	for _, c := range cs {
		c.view.waitFor(t, fmt.Sprintf("%s to have exactly %v", c.policy, addrs), func(eps map[string]uint32) bool {
			if len(eps) != len(addrs) {
				return false
			}
			for _, a := range addrs {
				if _, ok := eps[a]; !ok {
					return false
				}
			}
			return true
		})
	}
}

// waitHas waits until every client has (or, with has false, lacks) addr.
func waitHas(t testing.TB, cs []*client, addr string, has bool) {
	t.Helper()
	for _, c := range cs {
		c.view.waitFor(t, fmt.Sprintf("%s to have %s: %v", c.policy, addr, has), func(eps map[string]uint32) bool {
			_, ok := eps[addr]
			return ok == has
		})
	}
}

// waitWeight waits until every client has addr with weight w.
func waitWeight(t testing.TB, cs []*client, addr string, w uint32) {
	t.Helper()
	for _, c := range cs {
		c.view.waitFor(t, fmt.Sprintf("%s to have %s at weight %d", c.policy, addr, w), func(eps map[string]uint32) bool {
			got, ok := eps[addr]
			return ok && got == w
		})
	}
}

// tracker is a client stats handler that counts call attempts in flight
// per backend address: from the attempt's headers leaving (when its
// connection, so its address, is known) to its end.
type tracker struct {
	mu       sync.Mutex
	inflight map[string]int64
	sent     map[string]int64
}

func newTracker() *tracker {
	return &tracker{inflight: map[string]int64{}, sent: map[string]int64{}}
}

type attemptKey struct{}

type attempt struct{ addr string }

func (tr *tracker) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context {
	return context.WithValue(ctx, attemptKey{}, &attempt{})
}

func (tr *tracker) HandleRPC(ctx context.Context, s stats.RPCStats) {
	a, _ := ctx.Value(attemptKey{}).(*attempt)
	if a == nil {
		return
	}
	switch s := s.(type) {
	case *stats.OutHeader:
		if s.Client && s.RemoteAddr != nil && a.addr == "" {
			a.addr = s.RemoteAddr.String()
			tr.mu.Lock()
			tr.inflight[a.addr]++
			tr.sent[a.addr]++
			tr.mu.Unlock()
		}
	case *stats.End:
		if a.addr != "" {
			tr.mu.Lock()
			tr.inflight[a.addr]--
			tr.mu.Unlock()
		}
	}
}

func (tr *tracker) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }
func (tr *tracker) HandleConn(context.Context, stats.ConnStats)                       {}

// counts returns the attempts in flight on addr and those ever sent to it.
func (tr *tracker) counts(addr string) (inflight, sent int64) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.inflight[addr], tr.sent[addr]
}

// load makes calls from several goroutines, each paced so that etcd keeps
// some of the two cores, until stop.
type load struct {
	c        *client
	calls    atomic.Int64
	failed   atomic.Int64
	stopCh   chan struct{}
	wg       sync.WaitGroup
	mu       sync.Mutex
	failures []failure
}

type failure struct {
	start, end time.Time
	err        error
}

// loadPace is the least time between two calls of one load goroutine.
const loadPace = 2 * time.Millisecond

func startLoad(t *testing.T, c *client, goroutines int, timeout time.Duration, opts ...grpc.CallOption) *load {
	return startPacedLoad(t, c, goroutines, loadPace, timeout, opts...)
}

// startPacedLoad is startLoad with pace in place of loadPace: a load of many
// goroutines that must not take the cores from etcd.
func startPacedLoad(t *testing.T, c *client, goroutines int, pace, timeout time.Duration, opts ...grpc.CallOption) *load {
	l := &load{c: c, stopCh: make(chan struct{})}
	for range goroutines {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			tick := time.NewTicker(pace)
			defer tick.Stop()
			for {
				select {
				case <-l.stopCh:
					return
				case <-tick.C:
				}
				start := time.Now()
				ctx, cancel := context.WithTimeout(context.Background(), timeout)
				_, err := c.tc.EmptyCall(ctx, &testgrpc.Empty{}, opts...)
				cancel()
				if err != nil {
					l.failed.Add(1)
					l.mu.Lock()
					if len(l.failures) < 10000 {
						l.failures = append(l.failures, failure{start, time.Now(), err})
					}
					l.mu.Unlock()
				}
				l.calls.Add(1)
			}
		}()
	}
	t.Cleanup(l.stop)
	return l
}

// stop ends the load and waits for its goroutines; it may be called again.
func (l *load) stop() {
	select {
	case <-l.stopCh:
	default:
		close(l.stopCh)
	}
	l.wg.Wait()
}

// waitMore waits until the load has made n more calls.
func (l *load) waitMore(t testing.TB, n int64) {
	t.Helper()
	l.waitCalls(t, l.calls.Load()+n)
}

// waitCalls waits until the load has made target calls in all.
func (l *load) waitCalls(t testing.TB, target int64) {
	t.Helper()
	if !poll.Until(waitTimeout, func() bool { return l.calls.Load() >= target }) {
		t.Fatalf("%s: load made %d calls, want %d, within %v", l.c.policy, l.calls.Load(), target, waitTimeout)
	}
}

// failuresSince returns the failed calls that started at or after from.
func (l *load) failuresSince(from time.Time) []failure {
	l.mu.Lock()
	defer l.mu.Unlock()
	var fs []failure
	for _, f := range l.failures {
		if !f.start.Before(from) {
			fs = append(fs, f)
		}
	}
	return fs
}

// logFailures logs up to 5 failures with the policy.
func (l *load) logFailures(t testing.TB) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, f := range l.failures {
		if i == 5 {
			t.Logf("%s: ... and %d more failures", l.c.policy, len(l.failures)-i)
			break
		}
		t.Logf("%s: call started %s failed after %v: %v", l.c.policy, f.start.Format("15:04:05.000"), f.end.Sub(f.start), f.err)
	}
}

// startLoads starts one load per client.
func startLoads(t *testing.T, cs []*client, goroutines int) []*load {
	var ls []*load
	for _, c := range cs {
		ls = append(ls, startLoad(t, c, goroutines, callTimeout))
	}
	return ls
}

// waitAllMore waits until every load has made n more calls than it had
// when called: the loads are counted from the same moment, so the wait lasts
// as long as the slowest load's n calls, not the sum of all of them.
func waitAllMore(t testing.TB, ls []*load, n int64) {
	t.Helper()
	targets := make([]int64, len(ls))
	for i, l := range ls {
		targets[i] = l.calls.Load() + n
	}
	for i, l := range ls {
		l.waitCalls(t, targets[i])
	}
}

// waitCalled waits until b has served n more calls than it had.
func waitCalled(t testing.TB, b *testserver.Server, n int64) {
	t.Helper()
	target := b.Calls() + n
	if !poll.Until(waitTimeout, func() bool { return b.Calls() >= target }) {
		t.Fatalf("backend %s served %d calls, want %d, within %v", b.Addr, b.Calls(), target, waitTimeout)
	}
}

// settleGoroutines waits, bounded, until at most max goroutines run (with
// max < 0: until their number holds still for 300ms), and returns how many
// run.
func settleGoroutines(max int) int {
	deadline := time.Now().Add(waitTimeout)
	last, still := -1, 0
	for {
		n := runtime.NumGoroutine()
		if n == last {
			still++
		} else {
			last, still = n, 0
		}
		if max >= 0 && n <= max || max < 0 && still == 3 || time.Now().After(deadline) {
			return n
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// testLogger logs warnings and errors through t until the test ends; with
// keys set, it counts the records that name an etcd key instead of logging
// them (thousands of them would drown the log).
func testLogger(t testing.TB, keys *atomic.Int64) *slog.Logger {
	sh := &logShared{t: t, keys: keys}
	t.Cleanup(func() { sh.done.Store(true) })
	return slog.New(&tHandler{sh: sh})
}

type logShared struct {
	t    testing.TB
	keys *atomic.Int64
	done atomic.Bool
}

type tHandler struct {
	sh    *logShared
	attrs []slog.Attr
}

var logMu sync.Mutex

func (h *tHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }

func (h *tHandler) Handle(_ context.Context, r slog.Record) error {
	if h.sh.keys != nil {
		hasKey := false
		r.Attrs(func(a slog.Attr) bool { hasKey = hasKey || a.Key == "key"; return !hasKey })
		if hasKey {
			h.sh.keys.Add(1)
			return nil
		}
	}
	var b strings.Builder
	b.WriteString(r.Level.String() + " " + r.Message)
	add := func(a slog.Attr) bool {
		v := a.Value.String()
		if len(v) > 200 {
			v = fmt.Sprintf("%s...(%d bytes)", v[:200], len(v))
		}
		fmt.Fprintf(&b, " %s=%s", a.Key, v)
		return true
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(add)
	if h.sh.done.Load() {
		return nil
	}
	logMu.Lock()
	defer logMu.Unlock()
	h.sh.t.Log(b.String())
	return nil
}

func (h *tHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &tHandler{sh: h.sh, attrs: append(append([]slog.Attr{}, h.attrs...), as...)}
}

func (h *tHandler) WithGroup(string) slog.Handler { return h }

// checkNoWorse fails the test when a load of an etcdlb policy failed more
// calls than the load of grpc-go's round_robin among ls (differential.Worse:
// any more, or, with chance, more than chance explains, where which calls
// fail is chance, e.g. those meeting a flaky backend). Only the calls
// started at or after since count: a scenario whose calls in flight on a
// killed backend fail passes the time it was gone. A "+suffix" of a policy
// names a variant (a retry policy): each variant is compared with
// round_robin's.
func checkNoWorse(t testing.TB, ls []*load, since time.Time, chance bool) {
	t.Helper()
	groups := map[string][]differential.Result{}
	var order []string
	for _, l := range ls {
		policy, variant, _ := strings.Cut(l.c.policy, "+")
		if _, ok := groups[variant]; !ok {
			order = append(order, variant)
		}
		failed := l.failed.Load()
		if !since.IsZero() {
			failed = int64(len(l.failuresSince(since)))
		}
		groups[variant] = append(groups[variant], differential.Result{Policy: policy, Calls: l.calls.Load(), Failed: failed})
	}
	for _, v := range order {
		if err := differential.Check(groups[v], chance); err != nil {
			t.Errorf("worse than grpc-go's %s%s: %v", differential.Reference, strings.TrimSuffix("+"+v, "+"), err)
		}
	}
}
