package balancer_test

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/resolver"

	etcdlb "github.com/etcdlb/etcdlb/balancer"
	"github.com/etcdlb/etcdlb/endpoint"
	"github.com/etcdlb/etcdlb/internal/differential"
	"github.com/etcdlb/etcdlb/internal/poll"
	"github.com/etcdlb/etcdlb/internal/testserver"
	"github.com/etcdlb/etcdlb/resolver/static"
)

// backends starts n real gRPC servers on 127.0.0.1.
func backends(t *testing.T, n int) []*testserver.Server {
	t.Helper()
	var ss []*testserver.Server
	for range n {
		s, err := testserver.Start()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Stop)
		ss = append(ss, s)
	}
	return ss
}

// dial connects to the static resolver r with policy and its config.
func dial(t *testing.T, r *static.Resolver, policy, config string) testgrpc.TestServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(r.Scheme()+":///svc",
		grpc.WithResolvers(r),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(fmt.Sprintf(`{"loadBalancingConfig":[{%q:%s}]}`, policy, config)),
		// Reconnect quickly once a stopped backend is back.
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, MaxDelay: 500 * time.Millisecond}}),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return testgrpc.NewTestServiceClient(conn)
}

func epFor(s *testserver.Server, weight uint32, zone string) resolver.Endpoint {
	return endpoint.New(s.Addr, endpoint.Attrs{Weight: weight, Zone: zone})
}

// calls makes n calls one after the other and returns how many each backend
// served.
func calls(t *testing.T, client testgrpc.TestServiceClient, ss []*testserver.Server, n int) []int64 {
	t.Helper()
	before := make([]int64, len(ss))
	for i, s := range ss {
		before[i] = s.Calls()
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	for range n {
		if _, err := client.EmptyCall(ctx, &testpb.Empty{}, grpc.WaitForReady(true)); err != nil {
			t.Fatalf("call failed: %v", err)
		}
	}
	got := make([]int64, len(ss))
	for i, s := range ss {
		got[i] = s.Calls() - before[i]
	}
	return got
}

// waitForCalls makes batches of n calls until a batch splits as want.
func waitForCalls(t *testing.T, client testgrpc.TestServiceClient, ss []*testserver.Server, n int, want []int64) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		got := calls(t, client, ss, n)
		if fmt.Sprint(got) == fmt.Sprint(want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("calls split %v, want %v", got, want)
		}
	}
}

// TestWeightChangeOverRealConnections drives a real grpc.ClientConn: a
// weight change moves the traffic and opens no TCP connection.
func TestWeightChangeOverRealConnections(t *testing.T) {
	ss := backends(t, 3)
	r := static.New("weights", epFor(ss[0], 1, ""), epFor(ss[1], 2, ""), epFor(ss[2], 3, ""))
	client := dial(t, r, etcdlb.WeightedName, `{}`)
	// Calls from one goroutine follow the schedule exactly, once every
	// backend is connected.
	waitForCalls(t, client, ss, 600, []int64{100, 200, 300})
	var accepted []int64
	for _, s := range ss {
		accepted = append(accepted, s.Accepted())
	}

	r.Update(epFor(ss[0], 3, ""), epFor(ss[1], 2, ""), epFor(ss[2], 1, ""))
	waitForCalls(t, client, ss, 600, []int64{300, 200, 100})
	r.Update(epFor(ss[0], 3, ""), epFor(ss[1], 0, ""), epFor(ss[2], 1, ""))
	waitForCalls(t, client, ss, 400, []int64{300, 0, 100})

	for i, s := range ss {
		if got := s.Accepted(); got != accepted[i] {
			t.Errorf("backend %d accepted %d new connections after weight changes, want 0", i, got-accepted[i])
		}
	}
}

// TestZoneFailoverOverRealConnections stops the local zone's backends under
// a stream of calls from several goroutines: no call fails (they use
// WaitForReady), none more than with grpc-go's round_robin on the same
// resolver and servers, calls move to the other zone, and return when the
// local zone is back.
func TestZoneFailoverOverRealConnections(t *testing.T) {
	for _, policy := range etcdlb.Names() {
		t.Run(policy, func(t *testing.T) {
			ss := backends(t, 4)
			local, remote := ss[:2], ss[2:]
			r := static.New("zones", epFor(ss[0], 1, "a"), epFor(ss[1], 1, "a"), epFor(ss[2], 1, "b"), epFor(ss[3], 1, "b"))
			client := dial(t, r, policy, `{"localZone":"a"}`)
			waitFor(t, "calls only in zone a", func() bool {
				got := calls(t, client, ss, 50)
				return got[0] > 0 && got[1] > 0 && got[2]+got[3] == 0
			})
			ref := dial(t, r, differential.Reference, `{}`)
			calls(t, ref, ss, 1)

			counts := []*differential.Count{differential.NewCount(policy), differential.NewCount(differential.Reference)}
			var stops []func()
			for i, c := range []testgrpc.TestServiceClient{client, ref} {
				stops = append(stops, counts[i].Load(t, 4, func() error {
					ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
					defer cancel()
					_, err := c.EmptyCall(ctx, &testpb.Empty{}, grpc.WaitForReady(true))
					return err
				}))
			}

			for _, s := range local {
				s.GracefulStop()
			}
			// With zone a stopped, the policy's calls are served in zone b.
			before := counts[0].Result().Calls
			waitFor(t, "calls in zone b", func() bool { return counts[0].Result().Calls > before+100 })
			for _, s := range local {
				if err := s.Restart(); err != nil {
					t.Fatal(err)
				}
			}
			stops[1]() // round_robin keeps calling zone b
			waitFor(t, "calls back in zone a", func() bool {
				l, rm := local[0].Calls()+local[1].Calls(), remote[0].Calls()+remote[1].Calls()
				time.Sleep(20 * time.Millisecond) // a window to count calls in, not a wait for an event
				return local[0].Calls()+local[1].Calls() > l && remote[0].Calls()+remote[1].Calls() == rm
			})
			stops[0]()
			differential.NoneFailed(t, counts)
		})
	}
}

// waitFor polls cond until it holds, for at most waitTimeout.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	if !poll.Until(waitTimeout, cond) {
		t.Fatalf("timed out waiting for %s", what)
	}
}

// TestLeastInflightWeightsOverRealConnections: calls made one after the
// other never overlap, and least-inflight must still follow the weights
// (issue 12: 1:2:3 got 0.34/0.34/0.32).
func TestLeastInflightWeightsOverRealConnections(t *testing.T) {
	ss := backends(t, 3)
	r := static.New("li-weights", epFor(ss[0], 1, ""), epFor(ss[1], 2, ""), epFor(ss[2], 3, ""))
	client := dial(t, r, etcdlb.LeastInflightName, `{}`)
	waitFor(t, "calls on every backend", func() bool {
		got := calls(t, client, ss, 60)
		return got[0] > 0 && got[1] > 0 && got[2] > 0
	})
	const n = 3000
	got := calls(t, client, ss, n)
	for i, want := range []float64{1.0 / 6, 2.0 / 6, 3.0 / 6} {
		if share := float64(got[i]) / n; math.Abs(share-want) > 0.05 {
			t.Errorf("backend %d (weight %d): share %.3f of %d sequential calls, want %.3f ± 0.05 (split %v)", i, i+1, share, n, want, got)
		}
	}
}
