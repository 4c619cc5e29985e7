package static

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"

	"github.com/etcdlb/etcdlb/endpoint"
	"github.com/etcdlb/etcdlb/internal/leakcheck"
	"github.com/etcdlb/etcdlb/internal/testserver"
)

// TestClosedClientConnIsForgotten: a closed ClientConn leaves no goroutine
// and is no longer updated.
func TestClosedClientConnIsForgotten(t *testing.T) {
	srv, err := testserver.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	s := leakcheck.Take()
	r := New("static", endpoint.New(srv.Addr, endpoint.Attrs{Weight: 1}))
	conn, err := grpc.NewClient("static:///svc", grpc.WithResolvers(r),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := testgrpc.NewTestServiceClient(conn).EmptyCall(ctx, &testgrpc.Empty{}, grpc.WaitForReady(true)); err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	n := len(r.conns)
	r.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d ClientConns while one uses the resolver", n)
	}
	conn.Close()
	r.Update() // reaches no closed ClientConn
	s.Check(t)
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.conns) != 0 {
		t.Errorf("%d ClientConns after the only one closed", len(r.conns))
	}
}
