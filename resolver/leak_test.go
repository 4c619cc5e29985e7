package resolver_test

import (
	"context"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/resolver"

	"github.com/etcdlb/etcdlb/internal/etcdtest"
	"github.com/etcdlb/etcdlb/internal/leakcheck"
	"github.com/etcdlb/etcdlb/registry"
	etcdlbresolver "github.com/etcdlb/etcdlb/resolver"
)

func TestResolverCloseLeavesNoGoroutine(t *testing.T) {
	e := etcdtest.NewEnv(t)
	e.Warm(t)
	e.Put(t, "echo/127.0.0.1:1001", `{"addr":"127.0.0.1:1001"}`)
	s := leakcheck.Take()
	b := etcdlbresolver.NewBuilder(e.Cli, etcdlbresolver.WithLogger(etcdtest.Logger(t)))
	cc := etcdtest.NewCC()
	r, err := b.Build(resolver.Target{URL: *etcdtest.MustURL("etcd:///echo")}, cc, resolver.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cc.WaitEndpoints(t, "127.0.0.1:1001/1/")
	// A change through the watch, so that it is surely running.
	e.Put(t, "echo/127.0.0.1:1002", `{"addr":"127.0.0.1:1002"}`)
	cc.WaitEndpoints(t, "127.0.0.1:1001/1/ 127.0.0.1:1002/1/")
	r.Close()
	s.Check(t)
}

// TestClientConnCloseLeavesNoGoroutine: a real ClientConn through the etcd
// resolver and an etcdlb policy, to real backends, closed.
func TestClientConnCloseLeavesNoGoroutine(t *testing.T) {
	e := etcdtest.NewEnv(t)
	e.Warm(t)
	backend := startBackend(t)
	reg := etcdtest.Register(t, e.Cli, registry.Registration{Service: "echo", Addr: backend.Addr})
	s := leakcheck.Take()
	conn, err := grpc.NewClient("etcd:///echo",
		grpc.WithResolvers(etcdlbresolver.NewBuilder(e.Cli, etcdlbresolver.WithLogger(etcdtest.Logger(t)))),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"etcdlb_weighted":{}}]}`),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), etcdtest.WaitTimeout)
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
