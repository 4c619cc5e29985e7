package balancer_test

import (
	"errors"
	"strings"
	"testing"

	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/resolver"

	etcdlb "github.com/etcdlb/etcdlb/balancer"
	"github.com/etcdlb/etcdlb/endpoint"
)

// TestEmptyUpdateKeepsTheReason: an empty update gives its picker the
// reason it carries, or else the last resolver error; an update with
// endpoints forgets it.
func TestEmptyUpdateKeepsTheReason(t *testing.T) {
	h := newHarness(t, etcdlb.WeightedName, `{}`, true)
	pickErr := func(want string) {
		t.Helper()
		h.waitFor(want, func(s balancer.State) bool {
			_, err := s.Picker.Pick(balancer.PickInfo{})
			return s.ConnectivityState == connectivity.TransientFailure && err != nil && strings.Contains(err.Error(), want)
		})
	}
	empty := func(s resolver.State) {
		h.lb.UpdateClientConnState(balancer.ClientConnState{ResolverState: s, BalancerConfig: h.cfg})
	}
	empty(endpoint.WithNoEndpointsReason(resolver.State{}, errors.New("nothing under echo/")))
	pickErr("no endpoints; resolver error: nothing under echo/")

	h.lb.ResolverError(errors.New("etcd unreachable"))
	empty(resolver.State{})
	pickErr("no endpoints; resolver error: etcd unreachable")

	h.update(ep("a:1", 1, ""))
	h.waitForSplit(10, map[string]int{"a:1": 10})
	empty(resolver.State{})
	h.waitFor("no endpoints without a stale reason", func(s balancer.State) bool {
		_, err := s.Picker.Pick(balancer.PickInfo{})
		return err != nil && strings.HasSuffix(err.Error(), "no endpoints")
	})
}
