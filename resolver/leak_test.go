package resolver_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/resolver"

	"github.com/etcdlb/etcdlb/internal/leakcheck"
	etcdlbresolver "github.com/etcdlb/etcdlb/resolver"
)

// warmClient makes e's etcd client start the goroutines it keeps for its
// whole life (the connection, the lease keep-alive loops, started by its
// first KeepAlive), so that a snapshot taken after it holds them.
func warmClient(t *testing.T, e *env) {
	t.Helper()
	reg := register(t, e.cli, etcdlbresolver.Registration{Service: "warm", Addr: "127.0.0.1:9"})
	if err := reg.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestResolverCloseLeavesNoGoroutine(t *testing.T) {
	e := newEnv(t)
	warmClient(t, e)
	e.put(t, "echo/127.0.0.1:1001", `{"addr":"127.0.0.1:1001"}`)
	s := leakcheck.Take()
	b := etcdlbresolver.NewBuilder(e.cli, etcdlbresolver.WithLogger(testLogger(t)))
	cc := newFakeCC()
	r, err := b.Build(resolver.Target{URL: *mustURL("etcd:///echo")}, cc, resolver.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cc.waitEndpoints(t, "127.0.0.1:1001/1/")
	// A change through the watch, so that it is surely running.
	e.put(t, "echo/127.0.0.1:1002", `{"addr":"127.0.0.1:1002"}`)
	cc.waitEndpoints(t, "127.0.0.1:1001/1/ 127.0.0.1:1002/1/")
	r.Close()
	s.Check(t)
}

// TestClientConnCloseLeavesNoGoroutine: a real ClientConn through the etcd
// resolver and an etcdlb policy, to real backends, closed.
func TestClientConnCloseLeavesNoGoroutine(t *testing.T) {
	e := newEnv(t)
	warmClient(t, e)
	backend := startBackend(t)
	reg := register(t, e.cli, etcdlbresolver.Registration{Service: "echo", Addr: backend.Addr})
	s := leakcheck.Take()
	conn, err := grpc.NewClient("etcd:///echo",
		grpc.WithResolvers(etcdlbresolver.NewBuilder(e.cli, etcdlbresolver.WithLogger(testLogger(t)))),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"etcdlb_weighted":{}}]}`),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if _, err := testgrpc.NewTestServiceClient(conn).EmptyCall(ctx, &testgrpc.Empty{}, grpc.WaitForReady(true)); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	// The registration starts its watch in the background, maybe after
	// the snapshot: it is closed too.
	if err := reg.Close(); err != nil {
		t.Fatal(err)
	}
	s.Check(t)
}

func TestRegistrarCloseLeavesNoGoroutine(t *testing.T) {
	for _, end := range []string{"Close", "Deregister"} {
		t.Run(end, func(t *testing.T) {
			e := newEnv(t)
			warmClient(t, e)
			s := leakcheck.Take()
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			reg, err := etcdlbresolver.Register(ctx, e.cli, etcdlbresolver.Registration{Service: "echo", Addr: "127.0.0.1:1001"},
				etcdlbresolver.WithLogger(testLogger(t)), etcdlbresolver.WithTTL(2*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			// An in-place weight edit, which the registration's watch sees.
			if err := reg.SetWeight(ctx, 3); err != nil {
				t.Fatal(err)
			}
			if end == "Close" {
				err = reg.Close()
			} else {
				err = reg.Deregister(ctx)
			}
			if err != nil {
				t.Fatal(err)
			}
			s.Check(t)
		})
	}
}

// TestRegistrarOfClosedClientLeavesNoGoroutine: a registration whose etcd
// client is closed under it stops by itself.
func TestRegistrarOfClosedClientLeavesNoGoroutine(t *testing.T) {
	e := newEnv(t)
	warmClient(t, e) // and so the server
	s := leakcheck.Take()
	cli, err := e.etcd.Client()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	reg, err := etcdlbresolver.Register(ctx, cli, etcdlbresolver.Registration{Service: "echo", Addr: "127.0.0.1:1001"},
		etcdlbresolver.WithLogger(testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	cli.Close()
	s.Check(t)
	if st := reg.State(); st != etcdlbresolver.Closed {
		t.Errorf("state after the client closed: %v", st)
	}
}
