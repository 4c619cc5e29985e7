package resolver_test

import (
	"context"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/naming/endpoints"
	etcdnaming "go.etcd.io/etcd/client/v3/naming/resolver"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/resolver"

	etcdlbresolver "github.com/etcdlb/etcdlb/resolver"
)

// TestInteropEtcdManagerWritesWeRead: endpoints written by etcd's own
// naming/endpoints.Manager, with any key name, are found by our resolver.
func TestInteropEtcdManagerWritesWeRead(t *testing.T) {
	e := newEnv(t)
	em, err := endpoints.NewManager(e.cli, "echo")
	if err != nil {
		t.Fatal(err)
	}
	lease, err := e.cli.Grant(e.ctx, 30)
	if err != nil {
		t.Fatal(err)
	}
	if err := em.AddEndpoint(e.ctx, "echo/10.0.0.1:80", endpoints.Endpoint{Addr: "10.0.0.1:80",
		Metadata: map[string]string{"v": "2"}}, clientv3.WithLease(lease.ID)); err != nil {
		t.Fatal(err)
	}
	if err := em.AddEndpoint(e.ctx, "echo/instance-2", endpoints.Endpoint{Addr: "10.0.0.2:80", Metadata: 42}); err != nil {
		t.Fatal(err)
	}
	cc, _ := build(t, e.cli, "echo")
	cc.waitEndpoints(t, "10.0.0.1:80/1//v=2 10.0.0.2:80/1/")
	if err := em.DeleteEndpoint(e.ctx, "echo/instance-2"); err != nil {
		t.Fatal(err)
	}
	cc.waitEndpoints(t, "10.0.0.1:80/1//v=2")
}

// TestInteropEtcdResolverReadsOurs: etcd's own naming/resolver finds our
// registrations, and a real call goes through it; our override keys are not
// in its way.
func TestInteropEtcdResolverReadsOurs(t *testing.T) {
	e := newEnv(t)
	b := startBackend(t)
	register(t, e.cli, etcdlbresolver.Registration{Service: "echo", Addr: b.Addr, Weight: 5, Zone: "a",
		Metadata: map[string]string{"v": "1"}})
	if err := etcdlbresolver.SetOverride(e.ctx, e.cli, "echo", b.Addr, 9); err != nil {
		t.Fatal(err)
	}
	// Directly: the Manager's view of our keys.
	em, err := endpoints.NewManager(e.cli, "echo")
	if err != nil {
		t.Fatal(err)
	}
	eps, err := em.List(e.ctx)
	if err != nil || len(eps) != 1 || eps["echo/"+b.Addr].Addr != b.Addr {
		t.Fatalf("Manager.List = %v, %v", eps, err)
	}
	// Through a gRPC client on etcd's resolver.
	rb, err := etcdnaming.NewBuilder(e.cli)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient("etcd:///echo", grpc.WithResolvers(rb),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if _, err := testgrpc.NewTestServiceClient(conn).EmptyCall(ctx, &testgrpc.Empty{}, grpc.WaitForReady(true)); err != nil {
		t.Fatal(err)
	}
	if b.Calls() != 1 {
		t.Fatalf("backend got %d calls", b.Calls())
	}
	// And its resolver's state has exactly our one endpoint.
	cc := newFakeCC()
	r, err := rb.Build(resolver.Target{URL: *mustURL("etcd:///echo")}, cc, resolver.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	s := cc.waitFor(t, "etcd resolver state", func(last *resolver.State, _ []error) bool { return last != nil })
	if len(s.Endpoints) != 1 || s.Endpoints[0].Addresses[0].Addr != b.Addr {
		t.Fatalf("etcd resolver state %+v", s)
	}
}
