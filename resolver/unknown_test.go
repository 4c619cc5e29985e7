package resolver_test

import (
	"context"
	"strings"
	"testing"
	"time"

	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/resolver"

	"github.com/etcdlb/etcdlb/endpoint"
	"github.com/etcdlb/etcdlb/internal/etcdtest"
	etcdlbresolver "github.com/etcdlb/etcdlb/resolver"
)

// TestUnknownServiceFirstCallSaysWhy makes the first call of fresh clients
// to a service with no endpoints: every one gets the resolver's reason, not
// a bare "no endpoints" (the empty update used to reach the policy before
// the error that says why).
func TestUnknownServiceFirstCallSaysWhy(t *testing.T) {
	e := etcdtest.NewEnv(t)
	for i := range 20 {
		c := dial(t, e.Cli, "nosuch", `{}`)
		ctx, cancel := context.WithTimeout(context.Background(), etcdtest.WaitTimeout)
		_, err := c.EmptyCall(ctx, &testgrpc.Empty{})
		cancel()
		if err == nil || !strings.Contains(err.Error(), `service "nosuch" has no endpoints in etcd`) {
			t.Fatalf("client %d, first call: %v, want the resolver's reason", i, err)
		}
	}
}

// TestEmptyStateCarriesReason: the empty state itself says why, so that a
// policy built for it (grpc-go drops a ReportError made before) has the
// reason for its first picker.
func TestEmptyStateCarriesReason(t *testing.T) {
	e := etcdtest.NewEnv(t)
	cc, _ := etcdtest.Build(t, e.Cli, "nosuch")
	s := cc.WaitFor(t, "an empty state", func(last *resolver.State, _ []error) bool { return last != nil })
	if err := endpoint.NoEndpointsReason(s); err == nil || !strings.Contains(err.Error(), "no endpoints in etcd") {
		t.Fatalf("empty state's reason: %v", err)
	}
}

// TestEtcdDownAtStartNamesCause builds a resolver while etcd is down: its
// error names the etcd endpoints and why they cannot be reached.
func TestEtcdDownAtStartNamesCause(t *testing.T) {
	e := etcdtest.NewEnv(t)
	e.Etcd.Stop(0)
	cc, _ := etcdtest.Build(t, e.Cli, "echo", etcdlbresolver.WithRequestTimeout(300*time.Millisecond))
	cc.WaitFor(t, "an error", func(_ *resolver.State, errs []error) bool { return len(errs) > 0 })
	err := cc.Errs()[0]
	for _, want := range []string{`cannot list "echo/"`, e.Cli.Endpoints()[0], "connection refused"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("resolver error %q does not say %q", err, want)
		}
	}
	t.Logf("resolver error: %v", err)
}
