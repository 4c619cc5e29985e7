package balancer_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/resolver"

	"github.com/etcdlb/etcdlb/internal/fakecc"
	"github.com/etcdlb/etcdlb/internal/leakcheck"
	"github.com/etcdlb/etcdlb/metrics"
	"github.com/etcdlb/etcdlb/resolver/static"
)

// TestClientConnCloseLeavesNoGoroutine: each policy in a real ClientConn
// over the static resolver, with metrics, to real backends; after calls,
// an endpoint removed and a zone change, the ClientConn is closed.
func TestClientConnCloseLeavesNoGoroutine(t *testing.T) {
	ss := backends(t, 3)
	for _, policy := range allPolicies {
		t.Run(policy, func(t *testing.T) {
			s := leakcheck.Take()
			reg := prometheus.NewPedanticRegistry()
			m, err := metrics.New(reg)
			if err != nil {
				t.Fatal(err)
			}
			r := static.New("leak", epFor(ss[0], 1, "a"), epFor(ss[1], 2, "a"), epFor(ss[2], 3, "b")).WithMetrics(m)
			conn, err := grpc.NewClient(r.Scheme()+":///svc", grpc.WithResolvers(r),
				grpc.WithTransportCredentials(insecure.NewCredentials()),
				grpc.WithDefaultServiceConfig(fmt.Sprintf(`{"loadBalancingConfig":[{%q:{"localZone":"a"}}]}`, policy)))
			if err != nil {
				t.Fatal(err)
			}
			client := testgrpc.NewTestServiceClient(conn)
			call := func() {
				t.Helper()
				ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
				defer cancel()
				for range 20 {
					if _, err := client.EmptyCall(ctx, &testgrpc.Empty{}, grpc.WaitForReady(true)); err != nil {
						t.Fatal(err)
					}
				}
			}
			call()
			r.Update(epFor(ss[0], 1, "b"), epFor(ss[2], 3, "a"))
			call()
			if n, err := testutil.GatherAndCount(reg); err != nil || n == 0 {
				t.Errorf("metrics: %d series, %v", n, err)
			}
			conn.Close()
			s.Check(t)
		})
	}
}

// TestCloseLeavesNoGoroutine: each policy on a fake ClientConn, with
// children connecting, becoming ready, going idle and failing, closed.
func TestCloseLeavesNoGoroutine(t *testing.T) {
	for _, policy := range allPolicies {
		t.Run(policy, func(t *testing.T) {
			s := leakcheck.Take()
			cc := fakecc.New()
			cfg, err := balancer.Get(policy).(balancer.ConfigParser).ParseConfig([]byte(`{}`))
			if err != nil {
				t.Fatal(err)
			}
			h := &harness{t: t, cc: cc, lb: balancer.Get(policy).Build(cc, balancer.BuildOptions{}), cfg: cfg}
			h.update(ep("a:1", 1, ""), ep("b:1", 2, ""), ep("c:1", 3, ""))
			for _, sc := range cc.SubConns() {
				sc.SetState(connectivity.Connecting, nil)
				sc.SetState(connectivity.Ready, nil)
			}
			h.waitFor("three ready", func(s balancer.State) bool { return len(split(s.Picker, 60)) == 3 })
			cc.SubConn("a:1").SetState(connectivity.Idle, nil) // the child reconnects on a goroutine
			cc.SubConn("b:1").SetState(connectivity.TransientFailure, fmt.Errorf("refused"))
			h.waitFor("c alone", func(s balancer.State) bool { return len(split(s.Picker, 60)) == 1 })
			h.lb.ResolverError(fmt.Errorf("resolver gone"))
			h.lb.UpdateClientConnState(balancer.ClientConnState{ResolverState: resolver.State{}, BalancerConfig: cfg})
			h.lb.Close()
			cc.Close()
			s.Check(t)
		})
	}
}
