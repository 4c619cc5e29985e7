package resolver_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	etcdlb "github.com/etcdlb/etcdlb/balancer"
	"github.com/etcdlb/etcdlb/internal/differential"
	"github.com/etcdlb/etcdlb/internal/etcdtest"
	"github.com/etcdlb/etcdlb/internal/poll"
	"github.com/etcdlb/etcdlb/internal/testserver"
	"github.com/etcdlb/etcdlb/registry"
	etcdlbresolver "github.com/etcdlb/etcdlb/resolver"
)

// startBackend starts a real gRPC server on 127.0.0.1 that counts calls
// and accepted TCP connections.
func startBackend(t testing.TB) *testserver.Server {
	t.Helper()
	b, err := testserver.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Stop)
	return b
}

// dial returns a client of etcd:///service through etcdlb's resolver and
// etcdlb_weighted with config lbConfig.
func dial(t testing.TB, cli *clientv3.Client, service, lbConfig string) testgrpc.TestServiceClient {
	t.Helper()
	return dialPolicy(t, cli, service, etcdlb.WeightedName, lbConfig)
}

// dialPolicy returns a client of etcd:///service through etcdlb's resolver
// and policy with config lbConfig.
func dialPolicy(t testing.TB, cli *clientv3.Client, service, policy, lbConfig string) testgrpc.TestServiceClient {
	t.Helper()
	conn, err := grpc.NewClient("etcd:///"+service,
		grpc.WithResolvers(etcdlbresolver.NewBuilder(cli, etcdlbresolver.WithLogger(etcdtest.Logger(t)),
			etcdlbresolver.WithBackoff(20*time.Millisecond, 500*time.Millisecond))),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"`+policy+`":`+lbConfig+`}]}`),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return testgrpc.NewTestServiceClient(conn)
}

// callBatch makes n calls and returns how many each backend got.
func callBatch(t testing.TB, c testgrpc.TestServiceClient, n int, bs []*testserver.Server) []int64 {
	t.Helper()
	before := make([]int64, len(bs))
	for i, b := range bs {
		before[i] = b.Calls()
	}
	for range n {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := c.EmptyCall(ctx, &testgrpc.Empty{})
		cancel()
		if err != nil {
			t.Fatalf("call: %v", err)
		}
	}
	got := make([]int64, len(bs))
	for i, b := range bs {
		got[i] = b.Calls() - before[i]
	}
	return got
}

// chiSquare is Pearson's statistic of got against weights.
func chiSquare(got []int64, weights []float64) float64 {
	var n, sum float64
	for i := range got {
		n += float64(got[i])
		sum += weights[i]
	}
	var x float64
	for i := range got {
		e := n * weights[i] / sum
		if e == 0 {
			if got[i] != 0 {
				return 1e9
			}
			continue
		}
		x += (float64(got[i]) - e) * (float64(got[i]) - e) / e
	}
	return x
}

// chi2Crit is the chi-square critical value at p = 0.001 for 2 degrees of
// freedom: a split this far off happens by chance once in a thousand runs.
const chi2Crit = 13.82

// waitSplit calls in batches until a batch splits as weights.
func waitSplit(t testing.TB, c testgrpc.TestServiceClient, bs []*testserver.Server, weights []float64) {
	t.Helper()
	deadline := time.Now().Add(etcdtest.WaitTimeout)
	for {
		got := callBatch(t, c, 600, bs)
		if chiSquare(got, weights) < chi2Crit {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("split %v, want %v", got, weights)
		}
	}
}

func TestEndToEndWeightedSplit(t *testing.T) {
	e := etcdtest.NewEnv(t)
	bs := []*testserver.Server{startBackend(t), startBackend(t), startBackend(t)}
	zones := []string{"a", "b", "b"}
	regs := make([]*registry.Registrar, len(bs))
	for i, b := range bs {
		regs[i] = etcdtest.Register(t, e.Cli, registry.Registration{Service: "echo", Addr: b.Addr,
			Weight: uint32(i + 1), Zone: zones[i]})
	}
	c := dial(t, e.Cli, "echo", `{}`)
	waitSplit(t, c, bs, []float64{1, 2, 3})
	got := callBatch(t, c, 1200, bs)
	if x := chiSquare(got, []float64{1, 2, 3}); x > chi2Crit {
		t.Fatalf("split %v, chi-square %.1f, want 1:2:3", got, x)
	}
	t.Logf("split of 1200 calls at 1:2:3: %v", got)
	conns := totalConns(bs)

	// An operator turns the weights around: the split follows, on the same
	// connections.
	for i, b := range bs {
		if err := registry.SetOverride(e.Ctx, e.Cli, "echo", b.Addr, uint32(3-i)); err != nil {
			t.Fatal(err)
		}
	}
	waitSplit(t, c, bs, []float64{3, 2, 1})
	if n := totalConns(bs); n != conns {
		t.Errorf("%d TCP connections after the weight change, %d before", n, conns)
	}

	// Zone preference through the same registrations.
	cz := dial(t, e.Cli, "echo", `{"localZone":"b"}`)
	waitSplit(t, cz, bs, []float64{0, 2, 1})

	// A server that deregisters gets no new call once clients know.
	if err := regs[2].Deregister(e.Ctx); err != nil {
		t.Fatal(err)
	}
	waitSplit(t, c, bs, []float64{3, 2, 0})
	if got := callBatch(t, c, 600, bs); got[2] != 0 {
		t.Errorf("deregistered server got %d calls", got[2])
	}
}

func totalConns(bs []*testserver.Server) int64 {
	var n int64
	for _, b := range bs {
		n += b.Accepted()
	}
	return n
}

// TestEtcdDownCallsKeepFlowing stops etcd for several seconds under a steady
// stream of calls: none fails, none more than with grpc-go's round_robin on
// the same resolver and servers, and a server registered after etcd is back
// is picked.
func TestEtcdDownCallsKeepFlowing(t *testing.T) {
	e := etcdtest.NewEnv(t)
	bs := []*testserver.Server{startBackend(t), startBackend(t), startBackend(t)}
	for i, b := range bs[:2] {
		etcdtest.Register(t, e.Cli, registry.Registration{Service: "echo", Addr: b.Addr, Weight: uint32(i + 1)},
			registry.WithTTL(10*time.Second))
	}
	c := dial(t, e.Cli, "echo", `{}`)
	waitSplit(t, c, bs, []float64{1, 2, 0})
	ref := dialPolicy(t, e.Cli, "echo", differential.Reference, `{}`)
	callBatch(t, ref, 1, bs)

	counts := []*differential.Count{differential.NewCount(etcdlb.WeightedName), differential.NewCount(differential.Reference)}
	var stops []func()
	for i, client := range []testgrpc.TestServiceClient{c, ref} {
		stops = append(stops, counts[i].Load(t, 2, func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second) // a stalled machine, not etcd, would miss 1 s
			defer cancel()
			_, err := client.EmptyCall(ctx, &testgrpc.Empty{})
			return err
		}))
	}
	e.Etcd.Stop(0)
	time.Sleep(4 * time.Second) // the outage itself
	if err := e.Etcd.Restart(0); err != nil {
		t.Fatal(err)
	}
	etcdtest.Register(t, e.Cli, registry.Registration{Service: "echo", Addr: bs[2].Addr, Weight: 3})
	if !poll.Until(etcdtest.WaitTimeout, func() bool { return bs[2].Calls() >= 100 }) {
		t.Fatalf("the server registered after the outage served %d calls", bs[2].Calls())
	}
	stops[1]() // the reference's calls would blur the split
	waitSplit(t, c, bs, []float64{1, 2, 3})
	stops[0]()
	differential.NoneFailed(t, counts)
}
