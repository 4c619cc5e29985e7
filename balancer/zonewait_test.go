package balancer_test

import (
	"errors"
	"testing"
	"time"

	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/connectivity"

	etcdlb "github.com/etcdlb/etcdlb/balancer"
	"github.com/etcdlb/etcdlb/internal/poll"
)

// zoneHarness is a policy with localZone b, one endpoint in b and two in
// a, on a fake clock; every SubConn is connecting and those of zone a are
// ready.
func zoneHarness(t *testing.T, policy string) (*harness, *etcdlb.FakeClock) {
	t.Helper()
	clk := etcdlb.NewFakeClock()
	h := newHarnessClock(t, policy, `{"localZone":"b","localZoneWait":"1s"}`, false, clk)
	h.update(ep("a:1", 1, "a"), ep("a:2", 1, "a"), ep("b:1", 1, "b"))
	for _, addr := range []string{"a:1", "a:2", "b:1"} {
		h.cc.SubConn(addr).SetState(connectivity.Connecting, nil)
	}
	h.set("a:1", connectivity.Ready)
	h.set("a:2", connectivity.Ready)
	h.waitStates("a:1=READY a:2=READY b:1=CONNECTING")
	return h, clk
}

func (h *harness) set(addr string, s connectivity.State) {
	var err error
	if s == connectivity.TransientFailure {
		err = errors.New("connection refused")
	}
	h.cc.SubConn(addr).SetState(s, err)
}

// waitStates waits until the policy has seen its endpoints in the states
// want describes and pushed the picker built on them.
func (h *harness) waitStates(want string) {
	h.t.Helper()
	var got string
	if !poll.Until(waitTimeout, func() bool { got = etcdlb.ChildStates(h.lb); return got == want }) {
		h.t.Fatalf("endpoint states %q, want %q", got, want)
	}
}

// wantPushed checks the state the policy pushed last, and that 30 picks of
// its picker go to every address of want and no other ("error": the pick
// failed).
func (h *harness) wantPushed(what string, state connectivity.State, want ...string) {
	h.t.Helper()
	s, _, _ := h.cc.State()
	if got := split(s.Picker, 30); s.ConnectivityState != state || !sameAddrs(got, want) {
		h.t.Fatalf("%s: state %v, picks %v; want %v, picks to %v", what, s.ConnectivityState, fmtSplit(got), state, want)
	}
}

func sameAddrs(got map[string]int, want []string) bool {
	if len(got) != len(want) {
		return false
	}
	for _, a := range want {
		if got[a] == 0 {
			return false
		}
	}
	return true
}

var (
	queued    = []string{"error"}
	zoneA     = []string{"a:1", "a:2"}
	localOnly = []string{"b:1"}
)

// TestLocalZoneWaitsForFirstConnection: picks wait while the local endpoint
// connects for the first time, spill when the wait ends, and come back when
// it is ready.
func TestLocalZoneWaitsForFirstConnection(t *testing.T) {
	for _, policy := range allPolicies {
		t.Run(policy, func(t *testing.T) {
			h, clk := zoneHarness(t, policy)
			h.wantPushed("local endpoint connecting", connectivity.Connecting, queued...)
			clk.Advance(999 * time.Millisecond)
			h.waitStates("a:1=READY a:2=READY b:1=CONNECTING")
			h.wantPushed("1 ms before the wait ends", connectivity.Connecting, queued...)

			clk.Advance(time.Millisecond)
			h.waitFor("spill to zone a when the wait ends", func(s balancer.State) bool {
				return s.ConnectivityState == connectivity.Ready && sameAddrs(split(s.Picker, 30), zoneA)
			})

			h.set("b:1", connectivity.Ready)
			h.waitStates("a:1=READY a:2=READY b:1=READY")
			h.wantPushed("local endpoint ready", connectivity.Ready, localOnly...)
		})
	}
}

// TestLocalZoneReadyWithinTheWait: no pick leaves the zone when the local
// endpoint connects in time, and the wait's timer is stopped.
func TestLocalZoneReadyWithinTheWait(t *testing.T) {
	for _, policy := range allPolicies {
		t.Run(policy, func(t *testing.T) {
			h, clk := zoneHarness(t, policy)
			h.wantPushed("local endpoint connecting", connectivity.Connecting, queued...)
			if n := clk.Timers(); n != 1 {
				t.Errorf("%d timers set while waiting, want 1", n)
			}
			h.set("b:1", connectivity.Ready)
			h.waitStates("a:1=READY a:2=READY b:1=READY")
			h.wantPushed("local endpoint ready", connectivity.Ready, localOnly...)
			if n := clk.Timers(); n != 0 {
				t.Errorf("%d timers left once the local endpoint is ready, want 0", n)
			}
		})
	}
}

// TestLocalZoneFailureSpillsAtOnce: a local endpoint that fails its first
// connection is not waited for; and a client already spilling does not
// stop its calls to wait for a new local endpoint.
func TestLocalZoneFailureSpillsAtOnce(t *testing.T) {
	for _, policy := range allPolicies {
		t.Run(policy, func(t *testing.T) {
			h, clk := zoneHarness(t, policy)
			h.set("b:1", connectivity.TransientFailure)
			h.waitStates("a:1=READY a:2=READY b:1=TRANSIENT_FAILURE")
			h.wantPushed("local endpoint failed", connectivity.Ready, zoneA...)

			h.update(ep("a:1", 1, "a"), ep("a:2", 1, "a"), ep("b:1", 1, "b"), ep("b:2", 1, "b"))
			h.cc.SubConn("b:2").SetState(connectivity.Connecting, nil)
			h.waitStates("a:1=READY a:2=READY b:1=TRANSIENT_FAILURE b:2=CONNECTING")
			h.wantPushed("spilling, a new local endpoint connecting", connectivity.Ready, zoneA...)
			if n := clk.Timers(); n != 0 {
				t.Errorf("%d timers set while spilling, want 0", n)
			}

			h.set("b:2", connectivity.Ready)
			h.waitStates("a:1=READY a:2=READY b:1=TRANSIENT_FAILURE b:2=READY")
			h.wantPushed("new local endpoint ready", connectivity.Ready, "b:2")
		})
	}
}

// TestLocalZoneWaitZeroSpillsAtOnce: localZoneWait "0s" keeps the old
// behaviour.
func TestLocalZoneWaitZeroSpillsAtOnce(t *testing.T) {
	h := newHarnessClock(t, etcdlb.WeightedName, `{"localZone":"b","localZoneWait":"0s"}`, false, etcdlb.NewFakeClock())
	h.update(ep("a:1", 1, "a"), ep("b:1", 1, "b"))
	h.cc.SubConn("b:1").SetState(connectivity.Connecting, nil)
	h.cc.SubConn("a:1").SetState(connectivity.Connecting, nil)
	h.set("a:1", connectivity.Ready)
	h.waitStates("a:1=READY b:1=CONNECTING")
	h.wantPushed("no wait", connectivity.Ready, "a:1")
}
