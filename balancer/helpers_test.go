package balancer_test

import (
	"encoding/json"
	"testing"
	"time"

	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/serviceconfig"

	etcdlb "github.com/etcdlb/etcdlb/balancer"
	"github.com/etcdlb/etcdlb/endpoint"
	"github.com/etcdlb/etcdlb/internal/fakecc"
)

const waitTimeout = 10 * time.Second

// harness is one policy instance on a fake ClientConn.
type harness struct {
	t   *testing.T
	cc  *fakecc.ClientConn
	lb  balancer.Balancer
	cfg serviceconfig.LoadBalancingConfig
}

func newHarness(t *testing.T, policy, config string, autoReady bool) *harness {
	t.Helper()
	return newHarnessClock(t, policy, config, autoReady, nil)
}

// newHarnessClock is newHarness with the policy's time read from clk, when
// it is not nil.
func newHarnessClock(t *testing.T, policy, config string, autoReady bool, clk *etcdlb.FakeClock) *harness {
	t.Helper()
	b := balancer.Get(policy)
	if b == nil {
		t.Fatalf("policy %q is not registered", policy)
	}
	cfg, err := b.(balancer.ConfigParser).ParseConfig(json.RawMessage(config))
	if err != nil {
		t.Fatalf("ParseConfig(%s): %v", config, err)
	}
	cc := fakecc.New()
	cc.AutoReady = autoReady
	h := &harness{t: t, cc: cc, cfg: cfg}
	if clk != nil {
		h.lb = etcdlb.BuildWithClock(policy, cc, clk)
	} else {
		h.lb = b.Build(cc, balancer.BuildOptions{})
	}
	t.Cleanup(func() { h.lb.Close(); cc.Close() })
	return h
}

// ep is an endpoint with a weight and a zone.
func ep(addr string, weight uint32, zone string) resolver.Endpoint {
	return endpoint.New(addr, endpoint.Attrs{Weight: weight, Zone: zone})
}

func (h *harness) update(eps ...resolver.Endpoint) error {
	return h.lb.UpdateClientConnState(balancer.ClientConnState{
		ResolverState:  resolver.State{Endpoints: eps},
		BalancerConfig: h.cfg,
	})
}

// waitFor waits until the policy pushes a state that ok accepts, and
// returns it.
func (h *harness) waitFor(what string, ok func(balancer.State) bool) balancer.State {
	h.t.Helper()
	deadline := time.After(waitTimeout)
	for {
		s, _, changed := h.cc.State()
		if s.Picker != nil && ok(s) {
			return s
		}
		select {
		case <-changed:
		case <-deadline:
			var got map[string]int
			if s.Picker != nil {
				got = split(s.Picker, 20)
			}
			h.t.Fatalf("timed out waiting for %s; last state %v, 20 picks went %v", what, s.ConnectivityState, got)
		}
	}
}

// waitForSplit waits until n picks land on the addresses exactly as want
// says, and returns the picker.
func (h *harness) waitForSplit(n int, want map[string]int) balancer.Picker {
	h.t.Helper()
	s := h.waitFor("the split "+fmtSplit(want), func(s balancer.State) bool {
		return s.ConnectivityState == connectivity.Ready && equalSplit(split(s.Picker, n), want)
	})
	return s.Picker
}

// split makes n picks and counts them by address; failed picks count
// under "error".
func split(p balancer.Picker, n int) map[string]int {
	got := map[string]int{}
	for range n {
		r, err := p.Pick(balancer.PickInfo{})
		if err != nil {
			got["error"]++
			continue
		}
		got[r.SubConn.(*fakecc.SubConn).Addr]++
		if r.Done != nil {
			r.Done(balancer.DoneInfo{})
		}
	}
	return got
}

func equalSplit(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func fmtSplit(m map[string]int) string {
	b, _ := json.Marshal(m)
	return string(b)
}
