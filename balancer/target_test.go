package balancer_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"

	etcdlb "github.com/etcdlb/etcdlb/balancer"
)

// TestForgottenWithResolversSaysSo dials etcd:///echo with no etcd resolver:
// grpc resolves it with its default scheme, "dns:///etcd:///echo". A
// resolver standing in for grpc's dns one (no lookup leaves the machine)
// finds nothing; the call's error says what to pass.
func TestForgottenWithResolversSaysSo(t *testing.T) {
	for _, policy := range allPolicies {
		t.Run(policy, func(t *testing.T) {
			dns := manual.NewBuilderWithScheme("dns")
			dns.BuildCallback = func(resolver.Target, resolver.ClientConn, resolver.BuildOptions) {
				go dns.UpdateState(resolver.State{})
			}
			conn, err := grpc.NewClient("etcd:///echo", grpc.WithResolvers(dns),
				grpc.WithTransportCredentials(insecure.NewCredentials()),
				grpc.WithDefaultServiceConfig(fmt.Sprintf(`{"loadBalancingConfig":[{%q:{}}]}`, policy)))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			_, err = testgrpc.NewTestServiceClient(conn).EmptyCall(ctx, &testpb.Empty{})
			if err == nil || !strings.Contains(err.Error(), "grpc.WithResolvers(resolver.NewBuilder(cli))") ||
				!strings.Contains(err.Error(), "dns:///etcd:///echo") {
				t.Fatalf("call: %v, want an error naming the target and grpc.WithResolvers", err)
			}
			t.Logf("%v", err)
		})
	}
}

// TestEtcdTargetHasNoHint: a target etcdlb's resolver resolved gets no hint.
func TestEtcdTargetHasNoHint(t *testing.T) {
	r := manual.NewBuilderWithScheme("etcd")
	r.BuildCallback = func(resolver.Target, resolver.ClientConn, resolver.BuildOptions) {
		go r.UpdateState(resolver.State{})
	}
	conn, err := grpc.NewClient("etcd:///echo", grpc.WithResolvers(r),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(fmt.Sprintf(`{"loadBalancingConfig":[{%q:{}}]}`, etcdlb.WeightedName)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = testgrpc.NewTestServiceClient(conn).EmptyCall(ctx, &testpb.Empty{})
	if err == nil || !strings.Contains(err.Error(), "no endpoints") || strings.Contains(err.Error(), "WithResolvers") {
		t.Fatalf("call: %v, want no endpoints and no hint", err)
	}
}
