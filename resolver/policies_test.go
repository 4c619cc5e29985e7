package resolver_test

import (
	"testing"

	grpcbalancer "google.golang.org/grpc/balancer"
)

// TestResolverBringsThePolicies: a program that imports the resolver package
// and not the balancer package can name every etcdlb policy (no test file
// of this package imports the balancer package).
func TestResolverBringsThePolicies(t *testing.T) {
	for _, name := range []string{"etcdlb_round_robin", "etcdlb_weighted", "etcdlb_least_inflight"} {
		if grpcbalancer.Get(name) == nil {
			t.Errorf("policy %s not registered by importing the resolver package", name)
		}
	}
}
