package resolver_test

import (
	"context"
	"testing"

	"github.com/etcdlb/etcdlb/internal/etcdtest"
	"github.com/etcdlb/etcdlb/registry"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/naming/endpoints"
	etcdnaming "go.etcd.io/etcd/client/v3/naming/resolver"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/resolver"
)

// TestInteropEtcdManagerWritesWeRead: endpoints written by etcd's own
// naming/endpoints.Manager, with any key name, are found by our resolver.
func TestInteropEtcdManagerWritesWeRead(t *testing.T) {
	e := etcdtest.NewEnv(t)
	em, err := endpoints.NewManager(e.Cli, "echo")
	if err != nil {
		t.Fatal(err)
	}
	lease, err := e.Cli.Grant(e.Ctx, 30)
	if err != nil {
		t.Fatal(err)
	}
	if err := em.AddEndpoint(e.Ctx, "echo/10.0.0.1:80", endpoints.Endpoint{Addr: "10.0.0.1:80",
		Metadata: map[string]string{"v": "2"}}, clientv3.WithLease(lease.ID)); err != nil {
		t.Fatal(err)
	}
	if err := em.AddEndpoint(e.Ctx, "echo/instance-2", endpoints.Endpoint{Addr: "10.0.0.2:80", Metadata: 42}); err != nil {
		t.Fatal(err)
	}
	cc, _ := etcdtest.Build(t, e.Cli, "echo")
	cc.WaitEndpoints(t, "10.0.0.1:80/1//v=2 10.0.0.2:80/1/")
	if err := em.DeleteEndpoint(e.Ctx, "echo/instance-2"); err != nil {
		t.Fatal(err)
	}
	cc.WaitEndpoints(t, "10.0.0.1:80/1//v=2")
}

// TestInteropEtcdResolverReadsOurs: etcd's own naming/resolver finds our
// registrations, and a real call goes through it; our override keys are not
// in its way.
func TestInteropEtcdResolverReadsOurs(t *testing.T) {
	e := etcdtest.NewEnv(t)
	b := startBackend(t)
	etcdtest.Register(t, e.Cli, registry.Registration{Service: "echo", Addr: b.Addr, Weight: 5, Zone: "a",
		Metadata: map[string]string{"v": "1"}})
	if err := registry.SetOverride(e.Ctx, e.Cli, "echo", b.Addr, 9); err != nil {
		t.Fatal(err)
	}
	// Directly: the Manager's view of our keys.
	em, err := endpoints.NewManager(e.Cli, "echo")
	if err != nil {
		t.Fatal(err)
	}
	eps, err := em.List(e.Ctx)
	if err != nil || len(eps) != 1 || eps["echo/"+b.Addr].Addr != b.Addr {
		t.Fatalf("Manager.List = %v, %v", eps, err)
	}
	// Through a gRPC client on etcd's resolver.
	rb, err := etcdnaming.NewBuilder(e.Cli)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient("etcd:///echo", grpc.WithResolvers(rb),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), etcdtest.WaitTimeout)
	defer cancel()
	if _, err := testgrpc.NewTestServiceClient(conn).EmptyCall(ctx, &testgrpc.Empty{}, grpc.WaitForReady(true)); err != nil {
		t.Fatal(err)
	}
	if b.Calls() != 1 {
		t.Fatalf("backend got %d calls", b.Calls())
	}
	// And its resolver's state has exactly our one endpoint.
	cc := etcdtest.NewCC()
	r, err := rb.Build(resolver.Target{URL: *etcdtest.MustURL("etcd:///echo")}, cc, resolver.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	s := cc.WaitFor(t, "etcd resolver state", func(last *resolver.State, _ []error) bool { return last != nil })
	if len(s.Endpoints) != 1 || s.Endpoints[0].Addresses[0].Addr != b.Addr {
		t.Fatalf("etcd resolver state %+v", s)
	}
}
