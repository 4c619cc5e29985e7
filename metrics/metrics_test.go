package metrics_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/resolver"

	etcdlb "github.com/etcdlb/etcdlb/balancer"
	"github.com/etcdlb/etcdlb/endpoint"
	"github.com/etcdlb/etcdlb/internal/embedetcd"
	"github.com/etcdlb/etcdlb/internal/poll"
	"github.com/etcdlb/etcdlb/internal/testserver"
	"github.com/etcdlb/etcdlb/metrics"
	"github.com/etcdlb/etcdlb/registry"
	etcdlbresolver "github.com/etcdlb/etcdlb/resolver"
	"github.com/etcdlb/etcdlb/resolver/static"
)

const waitTimeout = 15 * time.Second

// waitFor polls cond, bounded: metrics change without an event to wait on.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	if !poll.Until(waitTimeout, cond) {
		t.Fatalf("timed out waiting for %s", what)
	}
}

// waitValue waits, bounded, until the series name{labels} gathered from
// reg is want. A gauge read at scrape time (endpoint states) or set after
// the picker or resolver state it follows was pushed (spills, resolver
// endpoints) may lag the calls that just succeeded.
func waitValue(t *testing.T, reg *prometheus.Registry, what, name string, labels map[string]string, want float64) {
	t.Helper()
	var got float64
	if !poll.Until(waitTimeout, func() bool { got, _ = value(t, reg, name, labels); return got == want }) {
		t.Errorf("%s: %s%v = %v after %v, want %v", what, name, labels, got, waitTimeout, want)
	}
}

// value returns the value of the series name{labels} gathered from reg,
// and whether it exists.
func value(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if got[k] != v {
					continue next
				}
			}
			return metricValue(m), true
		}
	}
	return 0, false
}

func metricValue(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return 0
}

// newMetrics returns a Metrics on a registry of its own.
func newMetrics(t *testing.T) (*prometheus.Registry, *metrics.Metrics) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	return reg, m
}

// startEtcd starts an embedded etcd for the test, with a client and a
// context bounding the test's requests.
func startEtcd(t *testing.T) (*embedetcd.Cluster, *clientv3.Client, context.Context) {
	t.Helper()
	etcd := embedetcd.StartT(t, embedetcd.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return etcd, etcd.ClientT(t), ctx
}

func lint(t *testing.T, reg *prometheus.Registry) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}

func TestNewRejectsNilAndReusesCollectors(t *testing.T) {
	if _, err := metrics.New(nil); err == nil {
		t.Error("New(nil) succeeded, want an error")
	}
	reg := prometheus.NewRegistry()
	for range 2 {
		if _, err := metrics.New(reg); err != nil {
			t.Fatalf("New on the same registry: %v", err)
		}
	}
}

// TestNewRejectsNamesTakenByOthers checks that a collector already
// registered under one of etcdlb's names, with another type or other
// labels, makes New fail with an error naming the metric, rather than
// leave a nil collector that panics on first use.
func TestNewRejectsNamesTakenByOthers(t *testing.T) {
	for name, c := range map[string]prometheus.Collector{
		"another type": prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "etcdlb_resolver_updates_total", Help: "Endpoint sets pushed to gRPC."}, []string{"service"}),
		"other labels": prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "etcdlb_resolver_updates_total", Help: "Endpoint sets pushed to gRPC."}, []string{"service", "zone"}),
	} {
		t.Run(name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			reg.MustRegister(c)
			m, err := metrics.New(reg)
			if err == nil || !strings.Contains(err.Error(), "etcdlb_resolver_updates_total") {
				t.Fatalf("New = %v, %v; want an error naming etcdlb_resolver_updates_total", m, err)
			}
			t.Log(err)
		})
	}
}

// dial connects a client with policy to backends through a static resolver
// carrying m.
func dial(t *testing.T, m *metrics.Metrics, policy string, eps ...string) testgrpc.TestServiceClient {
	t.Helper()
	var table []endpointArg
	for i, addr := range eps {
		table = append(table, endpointArg{addr, uint32(i + 1)})
	}
	r := static.New("metrics", toEndpoints(table)...).WithMetrics(m)
	conn, err := grpc.NewClient("metrics:///echo", grpc.WithResolvers(r),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(fmt.Sprintf(`{"loadBalancingConfig":[{%q:{"localZone":"z1"}}]}`, policy)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return testgrpc.NewTestServiceClient(conn)
}

type endpointArg struct {
	addr   string
	weight uint32
}

func toEndpoints(args []endpointArg) []resolver.Endpoint {
	var eps []resolver.Endpoint
	for _, a := range args {
		eps = append(eps, endpoint.New(a.addr, endpoint.Attrs{Weight: a.weight, Zone: "z1"}))
	}
	return eps
}

func backend(t *testing.T) *testserver.Server {
	t.Helper()
	s, err := testserver.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// TestBalancerMetricsFollowRealPicks makes real calls through two
// ClientConns of each policy in one process, on one registry: the picks
// counted per endpoint match the calls each backend served.
func TestBalancerMetricsFollowRealPicks(t *testing.T) {
	reg, m := newMetrics(t)
	a, b := backend(t), backend(t)
	for _, policy := range etcdlb.Names() {
		for range 2 { // two ClientConns, same policy and service: series add up
			client := dial(t, m, policy, a.Addr, b.Addr)
			for range 30 {
				if _, err := client.EmptyCall(context.Background(), &testpb.Empty{}, grpc.WaitForReady(true)); err != nil {
					t.Fatal(err)
				}
			}
		}
		var sum float64
		for _, s := range []*testserver.Server{a, b} {
			v, _ := value(t, reg, "etcdlb_balancer_picks_total", map[string]string{"policy": policy, "endpoint": s.Addr, "zone": "z1"})
			sum += v
		}
		if sum != 60 {
			t.Errorf("%s: picks_total sums to %v over both endpoints, want 60", policy, sum)
		}
		// A ClientConn's second endpoint may still be connecting after its
		// calls: WaitForReady calls need only one.
		waitValue(t, reg, policy+": ready endpoints, 2 per ClientConn", "etcdlb_balancer_endpoints",
			map[string]string{"policy": policy, "state": "ready"}, 4)
		if v, _ := value(t, reg, "etcdlb_balancer_picker_rebuilds_total", map[string]string{"policy": policy, "service": "echo"}); v < 2 {
			t.Errorf("%s: %v picker rebuilds, want at least 2", policy, v)
		}
	}
	if got := a.Calls() + b.Calls(); got != 180 {
		t.Errorf("backends served %d calls, want 180", got)
	}
	for _, p := range etcdlb.Policies() {
		if _, ok := value(t, reg, "etcdlb_balancer_inflight_calls", map[string]string{"policy": p.Name, "endpoint": a.Addr}); ok != p.CountsInflight {
			t.Errorf("%s: an etcdlb_balancer_inflight_calls series: %v, want %v (it counts calls in flight: %[3]v)", p.Name, ok, p.CountsInflight)
		}
	}
	lint(t, reg)
}

func TestWithoutEndpointLabelsSumsPerZone(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg, metrics.WithoutEndpointLabels())
	if err != nil {
		t.Fatal(err)
	}
	a, b := backend(t), backend(t)
	client := dial(t, m, "etcdlb_round_robin", a.Addr, b.Addr)
	for range 10 {
		if _, err := client.EmptyCall(context.Background(), &testpb.Empty{}, grpc.WaitForReady(true)); err != nil {
			t.Fatal(err)
		}
	}
	if v, _ := value(t, reg, "etcdlb_balancer_picks_total", map[string]string{"zone": "z1"}); v != 10 {
		t.Errorf("picks_total{zone=z1} = %v, want 10", v)
	}
	if n, err := testutil.GatherAndCount(reg, "etcdlb_balancer_picks_total"); err != nil || n != 1 {
		t.Errorf("%d picks_total series, want 1 (one zone, no endpoint label)", n)
	}
}

func TestPickFailuresCounted(t *testing.T) {
	reg, m := newMetrics(t)
	// A port nobody listens on: the endpoint fails, and calls fail with it.
	s := backend(t)
	addr := s.Addr
	s.Stop()
	client := dial(t, m, "etcdlb_weighted", addr)
	waitFor(t, "a failed call", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := client.EmptyCall(ctx, &testpb.Empty{})
		return err != nil && strings.Contains(err.Error(), "endpoints failing")
	})
	if v, _ := value(t, reg, "etcdlb_balancer_pick_failures_total", map[string]string{"reason": "unavailable"}); v < 1 {
		t.Errorf("pick_failures_total{reason=unavailable} = %v, want at least 1", v)
	}
	waitValue(t, reg, "the failing endpoint", "etcdlb_balancer_endpoints", map[string]string{"state": "failing"}, 1)
}

// TestResolverAndRegistrationMetrics runs a real registration and resolver
// against the embedded etcd.
func TestResolverAndRegistrationMetrics(t *testing.T) {
	reg, m := newMetrics(t)
	_, cli, ctx := startEtcd(t)

	s := backend(t)
	r, err := registry.Register(ctx, cli, registry.Registration{Service: "echo", Addr: s.Addr, Weight: 2, Zone: "z1"},
		registry.WithMetrics(m), registry.WithTTL(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	waitFor(t, "registered", func() bool {
		v, _ := value(t, reg, "etcdlb_registration_state", map[string]string{"service": "echo", "state": "registered"})
		return v == 1
	})
	waitFor(t, "a lease renewal", func() bool {
		v, _ := value(t, reg, "etcdlb_registration_lease_renewals_total", map[string]string{"service": "echo"})
		return v >= 1
	})

	conn, err := grpc.NewClient("etcd:///echo",
		grpc.WithResolvers(etcdlbresolver.NewBuilder(cli, etcdlbresolver.WithMetrics(m))),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"etcdlb_weighted":{}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := testgrpc.NewTestServiceClient(conn)
	if _, err := client.EmptyCall(ctx, &testpb.Empty{}, grpc.WaitForReady(true)); err != nil {
		t.Fatal(err)
	}
	// Set once the push has returned, maybe after the call.
	waitValue(t, reg, "the endpoints pushed", "etcdlb_resolver_endpoints", map[string]string{"service": "echo"}, 1)
	updates, _ := value(t, reg, "etcdlb_resolver_updates_total", map[string]string{"service": "echo"})
	if _, err := cli.Put(ctx, "echo/127.0.0.1:1", `{"addr":"127.0.0.1:1","weight":-1}`); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the rejected value counted", func() bool {
		v, ok := value(t, reg, "etcdlb_resolver_rejected_values_total", map[string]string{"service": "echo"})
		return ok && v >= 1
	})
	if _, err := cli.Put(ctx, "echo/127.0.0.1:2", `{"addr":"127.0.0.1:2"}`); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "an update pushed", func() bool {
		v, _ := value(t, reg, "etcdlb_resolver_updates_total", map[string]string{"service": "echo"})
		return v > updates
	})
	if v, _ := value(t, reg, "etcdlb_resolver_last_sync_timestamp_seconds", map[string]string{"service": "echo"}); time.Since(time.Unix(int64(v), 0)) > time.Minute {
		t.Errorf("last sync at %v, want within the last minute", v)
	}
	if v, _ := value(t, reg, "etcdlb_balancer_picks_total", map[string]string{"endpoint": s.Addr}); v != 1 {
		t.Errorf("picks_total through the etcd resolver = %v, want 1", v)
	}
	lint(t, reg)
}

func TestZoneSpillCounted(t *testing.T) {
	reg, m := newMetrics(t)
	a := backend(t)
	// The client's zone is z9; the only endpoint is in z1: picks spill.
	r := static.New("spill", endpoint.New(a.Addr, endpoint.Attrs{Weight: 1, Zone: "z1"})).WithMetrics(m)
	conn, err := grpc.NewClient("spill:///echo", grpc.WithResolvers(r),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"etcdlb_round_robin":{"localZone":"z9"}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := testgrpc.NewTestServiceClient(conn).EmptyCall(context.Background(), &testpb.Empty{}, grpc.WaitForReady(true)); err != nil {
		t.Fatal(err)
	}
	// Counted once the picker has been pushed, maybe after the call.
	waitValue(t, reg, "spilling", "etcdlb_balancer_zone_spilled", map[string]string{"service": "echo"}, 1)
	waitValue(t, reg, "one spill", "etcdlb_balancer_zone_spills_total", map[string]string{"service": "echo"}, 1)
}

// TestLeaseLossCounted revokes a registration's lease from outside: the
// failure and the re-registration are counted.
func TestLeaseLossCounted(t *testing.T) {
	reg, m := newMetrics(t)
	_, cli, ctx := startEtcd(t)
	r, err := registry.Register(ctx, cli, registry.Registration{Service: "echo", Addr: "127.0.0.1:1"},
		registry.WithMetrics(m), registry.WithTTL(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	waitFor(t, "registered", func() bool { return r.State() == registry.Registered })
	if _, err := cli.Revoke(ctx, r.Lease()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the lease failure and the re-registration counted", func() bool {
		f, _ := value(t, reg, "etcdlb_registration_lease_failures_total", map[string]string{"service": "echo"})
		rr, _ := value(t, reg, "etcdlb_registration_reregistrations_total", map[string]string{"service": "echo"})
		return f >= 1 && rr >= 1
	})
	lint(t, reg)
}

// TestEtcdOutageCounted stops etcd under a resolver: its failed requests
// are counted, and the sync time moves on once etcd is back.
func TestEtcdOutageCounted(t *testing.T) {
	reg, m := newMetrics(t)
	etcd, cli, ctx := startEtcd(t)
	if _, err := cli.Put(ctx, "echo/127.0.0.1:1", `{"addr":"127.0.0.1:1"}`); err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient("etcd:///echo",
		grpc.WithResolvers(etcdlbresolver.NewBuilder(cli, etcdlbresolver.WithMetrics(m),
			etcdlbresolver.WithBackoff(20*time.Millisecond, 200*time.Millisecond),
			etcdlbresolver.WithRequestTimeout(500*time.Millisecond))),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"etcdlb_weighted":{}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.Connect()
	waitFor(t, "the first sync", func() bool {
		_, ok := value(t, reg, "etcdlb_resolver_last_sync_timestamp_seconds", map[string]string{"service": "echo"})
		return ok
	})
	etcd.Stop(0)
	waitFor(t, "etcd errors counted", func() bool {
		e, _ := value(t, reg, "etcdlb_resolver_etcd_errors_total", map[string]string{"service": "echo"})
		return e >= 1
	})
	stale, _ := value(t, reg, "etcdlb_resolver_last_sync_timestamp_seconds", map[string]string{"service": "echo"})
	if err := etcd.Restart(0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a sync after the restart", func() bool {
		v, _ := value(t, reg, "etcdlb_resolver_last_sync_timestamp_seconds", map[string]string{"service": "echo"})
		return v > stale
	})
}
