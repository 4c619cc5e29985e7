package balancer_test

import (
	"errors"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/status"

	etcdlb "github.com/etcdlb/etcdlb/balancer"
	"github.com/etcdlb/etcdlb/internal/fakecc"
	"github.com/etcdlb/etcdlb/internal/pickerinfo"
	"github.com/etcdlb/etcdlb/internal/workers"
)

var allPolicies = etcdlb.Names()

func TestParseConfig(t *testing.T) {
	second := etcdlb.Duration(time.Second)
	leastInflight := func(choiceCount int) etcdlb.Config {
		return etcdlb.WithParams(etcdlb.Config{LocalZoneMinReady: 1, LocalZoneWait: second},
			etcdlb.LeastInflightParams{ChoiceCount: choiceCount})
	}
	tests := []struct {
		policy, config string
		want           etcdlb.Config
		wantErr        string // a substring of the error; "" for none
	}{
		{policy: etcdlb.WeightedName, config: `{}`, want: etcdlb.Config{LocalZoneMinReady: 1, LocalZoneWait: second}},
		{policy: etcdlb.WeightedName, config: ``, want: etcdlb.Config{LocalZoneMinReady: 1, LocalZoneWait: second}},
		{policy: etcdlb.LeastInflightName, config: `{}`, want: leastInflight(2)},
		{policy: etcdlb.RoundRobinName, config: `{"localZone":"eu-1a","localZoneMinReady":3}`,
			want: etcdlb.Config{LocalZone: "eu-1a", LocalZoneMinReady: 3, LocalZoneWait: second}},
		{policy: etcdlb.LeastInflightName, config: `{"choiceCount":10}`, want: leastInflight(10)},
		{policy: etcdlb.WeightedName, config: `{"localZoneWait":"0.25s"}`,
			want: etcdlb.Config{LocalZoneMinReady: 1, LocalZoneWait: etcdlb.Duration(250 * time.Millisecond)}},
		{policy: etcdlb.WeightedName, config: `{"localZoneWait":"0s"}`, want: etcdlb.Config{LocalZoneMinReady: 1}},
		{policy: etcdlb.WeightedName, config: `{"localZoneWait":"-1s"}`, wantErr: "localZoneWait: -1s, must be from 0s to 20s"},
		{policy: etcdlb.WeightedName, config: `{"localZoneWait":"21s"}`, wantErr: "localZoneWait: 21s, must be from 0s to 20s"},
		{policy: etcdlb.WeightedName, config: `{"localZoneWait":"soon"}`, wantErr: `config field localZoneWait: "soon" is not a duration`},
		{policy: etcdlb.WeightedName, config: `{"localZoneWait":1}`, wantErr: `config field localZoneWait: 1 is not a duration string`},
		{policy: etcdlb.LeastInflightName, config: `{"choiceCount":1}`, wantErr: "choiceCount: 1, must be at least 2"},
		// Above 10 counts as 10, as grpc-go's least_request_experimental
		// takes it (gRFC A48).
		{policy: etcdlb.LeastInflightName, config: `{"choiceCount":11}`, want: leastInflight(10)},
		{policy: etcdlb.WeightedName, config: `{"choiceCount":2}`, wantErr: "choiceCount: only etcdlb_least_inflight"},
		{policy: etcdlb.WeightedName, config: `{"localZoneMinReady":0}`, wantErr: "localZoneMinReady: 0, must be at least 1"},
		{policy: etcdlb.WeightedName, config: `{"localzone":"a"}`, wantErr: `config field "localzone": unknown`},
		{policy: etcdlb.WeightedName, config: `{"localZone":7}`, wantErr: "localZone"},
		{policy: etcdlb.WeightedName, config: `{"localZone":"` + strings.Repeat("z", 300) + `"}`, wantErr: "localZone: longer than"},
		{policy: etcdlb.RoundRobinName, config: `[1]`, wantErr: "etcdlb_round_robin: config"},
		{policy: etcdlb.RoundRobinName, config: `{}{}`, wantErr: "invalid character"},
	}
	for _, tt := range tests {
		t.Run(tt.policy+tt.config, func(t *testing.T) {
			got, err := balancer.Get(tt.policy).(balancer.ConfigParser).ParseConfig([]byte(tt.config))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if c := *got.(*etcdlb.Config); c != tt.want {
				t.Errorf("got %+v, want %+v", c, tt.want)
			}
		})
	}
}

func TestWeightedSplitFollowsWeights(t *testing.T) {
	h := newHarness(t, etcdlb.WeightedName, `{}`, true)
	h.update(ep("a:1", 1, ""), ep("b:1", 2, ""), ep("c:1", 3, ""))
	// One goroutine's picks follow the schedule exactly: 600 picks are
	// 100 whole cycles.
	h.waitForSplit(600, map[string]int{"a:1": 100, "b:1": 200, "c:1": 300})
}

func TestWeightAndZoneChangesCreateNoSubConn(t *testing.T) {
	for _, policy := range allPolicies {
		t.Run(policy, func(t *testing.T) {
			h := newHarness(t, policy, `{"localZone":"z1"}`, true)
			h.update(ep("a:1", 1, "z1"), ep("b:1", 3, "z1"), ep("c:1", 1, "z2"))
			h.waitFor("all ready", func(s balancer.State) bool {
				return s.ConnectivityState == connectivity.Ready && len(split(s.Picker, 100)) == 2
			})
			before := h.cc.NewSubConnCount()

			// a moves to z2 and b is drained: c and a are in z2, b alone in
			// z1 has weight 0, so picks spill to the undrained a and c.
			h.update(ep("a:1", 5, "z2"), ep("b:1", 0, "z1"), ep("c:1", 1, "z2"))
			h.waitFor("the new weights", func(s balancer.State) bool {
				got := split(s.Picker, 60)
				return got["b:1"] == 0 && got["a:1"] > 0 && got["c:1"] > 0
			})
			if got := h.cc.NewSubConnCount(); got != before {
				t.Errorf("weight and zone change created %d SubConns, want 0", got-before)
			}
		})
	}
}

func TestDrain(t *testing.T) {
	h := newHarness(t, etcdlb.WeightedName, `{}`, true)
	h.update(ep("a:1", 1, ""), ep("b:1", 0, ""), ep("c:1", 1, ""))
	h.waitForSplit(100, map[string]int{"a:1": 50, "c:1": 50})

	// Every endpoint drained: rather than fail every call, they share it.
	h.update(ep("a:1", 0, ""), ep("b:1", 0, ""), ep("c:1", 0, ""))
	h.waitForSplit(300, map[string]int{"a:1": 100, "b:1": 100, "c:1": 100})
}

func TestOneEndpoint(t *testing.T) {
	for _, policy := range allPolicies {
		t.Run(policy, func(t *testing.T) {
			h := newHarness(t, policy, `{}`, true)
			h.update(ep("a:1", 7, "z"))
			h.waitForSplit(10, map[string]int{"a:1": 10})
		})
	}
}

func TestZeroEndpoints(t *testing.T) {
	h := newHarness(t, etcdlb.WeightedName, `{}`, true)
	if err := h.update(); !errors.Is(err, balancer.ErrBadResolverState) {
		t.Errorf("update with no endpoints returned %v, want ErrBadResolverState", err)
	}
	s := h.waitFor("transient failure", func(s balancer.State) bool {
		return s.ConnectivityState == connectivity.TransientFailure
	})
	_, err := s.Picker.Pick(balancer.PickInfo{})
	checkNoEndpointError(t, "pick with no endpoints", err, "etcdlb_weighted: no endpoints")

	h.lb.ResolverError(errors.New("etcd unreachable"))
	s = h.waitFor("the resolver error", func(s balancer.State) bool {
		_, err := s.Picker.Pick(balancer.PickInfo{})
		return err != nil && strings.Contains(err.Error(), "etcd unreachable")
	})
	if s.ConnectivityState != connectivity.TransientFailure {
		t.Errorf("state %v after a resolver error with no endpoints, want TRANSIENT_FAILURE", s.ConnectivityState)
	}
}

func TestAllFailingSaysWhy(t *testing.T) {
	h := newHarness(t, etcdlb.RoundRobinName, `{}`, false)
	h.update(ep("a:1", 1, ""), ep("b:1", 1, ""))
	// Before any SubConn has connected, picks wait.
	s := h.waitFor("connecting", func(s balancer.State) bool { return s.ConnectivityState == connectivity.Connecting })
	if _, err := s.Picker.Pick(balancer.PickInfo{}); err != balancer.ErrNoSubConnAvailable {
		t.Errorf("pick while connecting: %v, want ErrNoSubConnAvailable (queue)", err)
	}
	h.cc.SubConn("a:1").SetState(connectivity.TransientFailure, errors.New("connection refused"))
	h.cc.SubConn("b:1").SetState(connectivity.TransientFailure, errors.New("no route to host"))
	s = h.waitFor("transient failure", func(s balancer.State) bool {
		return s.ConnectivityState == connectivity.TransientFailure
	})
	_, err := s.Picker.Pick(balancer.PickInfo{})
	checkNoEndpointError(t, "pick with every endpoint failing", err,
		"all 2 endpoints failing", "a:1: ", "connection refused", "b:1: ", "no route to host")
}

// checkNoEndpointError checks the error of a pick that no endpoint can take:
// a plain error, which grpc-go turns into Unavailable with its message for a
// fail-fast call and waits on for a WaitForReady one (a status error would
// end both), and one that says each of want.
func checkNoEndpointError(t *testing.T, what string, err error, want ...string) {
	t.Helper()
	if err == nil || err == balancer.ErrNoSubConnAvailable {
		t.Fatalf("%s: %v, want an error saying why", what, err)
	}
	if _, isStatus := status.FromError(err); isStatus {
		t.Errorf("%s: a status error (%v): grpc-go would end WaitForReady calls with it", what, err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("%s: error %q does not say %q", what, err, w)
		}
	}
}

func TestZoneFailoverAndReturn(t *testing.T) {
	for _, policy := range allPolicies {
		t.Run(policy, func(t *testing.T) {
			h := newHarness(t, policy, `{"localZone":"z1","localZoneMinReady":2}`, true)
			h.update(ep("a:1", 1, "z1"), ep("b:1", 1, "z1"), ep("c:1", 1, "z2"), ep("d:1", 1, "z2"))
			onlyLocal := func(s balancer.State) bool {
				got := split(s.Picker, 100)
				return s.ConnectivityState == connectivity.Ready && got["c:1"]+got["d:1"] == 0 && got["a:1"] > 0 && got["b:1"] > 0
			}
			h.waitFor("only the local zone", onlyLocal)

			// One local endpoint fails: fewer than 2 left, so every zone
			// takes calls.
			h.cc.SubConn("a:1").SetState(connectivity.TransientFailure, errors.New("down"))
			h.waitFor("spill to every zone", func(s balancer.State) bool {
				got := split(s.Picker, 100)
				return got["a:1"] == 0 && got["error"] == 0 && got["c:1"] > 0 && got["d:1"] > 0 && got["b:1"] > 0
			})

			h.cc.SubConn("a:1").SetState(connectivity.Ready, nil)
			h.waitFor("back to the local zone", onlyLocal)
		})
	}
}

// TestInflightOutlivesRebuild holds calls open on one endpoint across a
// picker rebuild: the new picker must still see them, and their Done must
// bring that endpoint's count back to zero.
func TestInflightOutlivesRebuild(t *testing.T) {
	h := newHarness(t, etcdlb.LeastInflightName, `{}`, true)
	h.update(ep("a:1", 1, ""), ep("b:1", 1, ""))
	s := h.waitFor("both ready", func(s balancer.State) bool { return len(split(s.Picker, 50)) == 2 })

	// Hold 10 calls open (least-inflight puts 5 on each endpoint), then end
	// those on b: 5 stay open on a.
	var open, held []balancer.PickResult
	for range 10 {
		r, err := s.Picker.Pick(balancer.PickInfo{})
		if err != nil {
			t.Fatal(err)
		}
		open = append(open, r)
	}
	for _, r := range open {
		if r.SubConn.(*fakecc.SubConn).Addr == "a:1" {
			held = append(held, r)
		} else {
			r.Done(balancer.DoneInfo{})
		}
	}
	if len(held) != 5 {
		t.Fatalf("%d of 10 held calls on a:1, want 5", len(held))
	}

	// Rebuild with a weight change: b gets weight 2, which alone would not
	// outweigh 5 calls on a.
	h.update(ep("a:1", 1, ""), ep("b:1", 2, ""))
	s = h.waitFor("the rebuilt picker", func(s balancer.State) bool { return s.Picker != nil })
	for range 20 {
		r, _ := s.Picker.Pick(balancer.PickInfo{})
		if got := r.SubConn.(*fakecc.SubConn).Addr; got != "b:1" {
			t.Fatalf("rebuilt picker chose %s with 5 calls open on it, want b:1", got)
		}
		r.Done(balancer.DoneInfo{})
	}
	for _, r := range held {
		r.Done(balancer.DoneInfo{})
	}
	// With a back at zero (not at -5, as a fresh counter would be), calls
	// held open spread 1:2 over a and b.
	counts := map[string]int{}
	for range 30 {
		r, _ := s.Picker.Pick(balancer.PickInfo{})
		counts[r.SubConn.(*fakecc.SubConn).Addr]++
	}
	if counts["a:1"] != 10 || counts["b:1"] != 20 {
		t.Errorf("30 held calls split %v, want a:1=10 b:1=20", counts)
	}
}

func TestCloseAndExitIdleReachChildren(t *testing.T) {
	h := newHarness(t, etcdlb.RoundRobinName, `{}`, true)
	h.update(ep("a:1", 1, ""), ep("b:1", 1, ""))
	h.waitFor("ready", func(s balancer.State) bool { return len(split(s.Picker, 10)) == 2 })

	// A lost connection leaves pick_first IDLE; the policy reconnects it
	// at once, since nothing else would pick it.
	sc := h.cc.SubConn("a:1")
	connects := sc.Connects()
	sc.SetState(connectivity.Idle, nil)
	h.waitFor("a reconnected", func(s balancer.State) bool {
		return h.cc.SubConn("a:1").Connects() > connects && len(split(s.Picker, 10)) == 2
	})

	h.lb.Close()
	for _, sc := range h.cc.SubConns() {
		if !sc.IsShutdown() {
			t.Errorf("SubConn %s still up after Close", sc.Addr)
		}
	}
}

// TestFlappingUnderConcurrentPicks picks from several goroutines while
// endpoints flap between READY and TRANSIENT_FAILURE and weights change;
// run under -race. Every pick must return a SubConn or an error, never
// panic, and never a SubConn the policy has shut down.
func TestFlappingUnderConcurrentPicks(t *testing.T) {
	for _, policy := range allPolicies {
		t.Run(policy, func(t *testing.T) {
			h := newHarness(t, policy, `{"localZone":"z1"}`, true)
			h.update(ep("a:1", 1, "z1"), ep("b:1", 2, "z1"), ep("c:1", 3, "z2"))
			h.waitFor("ready", func(s balancer.State) bool { return s.ConnectivityState == connectivity.Ready })

			defer workers.Start(4, func() bool {
				s, _, _ := h.cc.State()
				r, err := s.Picker.Pick(balancer.PickInfo{})
				if err == nil {
					if r.SubConn.(*fakecc.SubConn).IsShutdown() {
						t.Error("picked a SubConn that was shut down")
						return false
					}
					if r.Done != nil {
						r.Done(balancer.DoneInfo{})
					}
				}
				return true
			})()
			for i := range 200 {
				for _, addr := range []string{"a:1", "b:1", "c:1"} {
					st := connectivity.Ready
					if (i+len(addr))%3 == 0 {
						st = connectivity.TransientFailure
					}
					h.cc.SubConn(addr).SetState(st, errors.New("flap"))
				}
				if i%20 == 0 {
					h.update(ep("a:1", uint32(i%4), "z1"), ep("b:1", 2, "z2"), ep("c:1", 3, "z2"))
				}
			}
			h.cc.SubConn("a:1").SetState(connectivity.Ready, nil)
			h.cc.SubConn("b:1").SetState(connectivity.Ready, nil)
			h.cc.SubConn("c:1").SetState(connectivity.Ready, nil)
			var last map[string]int
			h.waitFor("every endpoint ready again", func(s balancer.State) bool {
				last = split(s.Picker, 100)
				return last["error"] == 0 && last["b:1"] > 0 && last["c:1"] > 0
			})
			t.Logf("split after flapping: %v", last)
		})
	}
}

// TestPicksFromSeveralCoresStripeTheCounters checks that round robin and
// weighted count on one counter while one goroutine picks, and move to
// striped counters once picks from two goroutines collide on it, with no
// new SubConn and the same exact split.
func TestPicksFromSeveralCoresStripeTheCounters(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		t.Skip("needs two cores picking at once")
	}
	for _, policy := range etcdlb.Policies() {
		want := map[string]int{"a:1": 200, "b:1": 200, "c:1": 200}
		switch policy.Weights {
		case etcdlb.WeightsExact:
			want = map[string]int{"a:1": 100, "b:1": 200, "c:1": 300}
		case etcdlb.WeightsSampled:
			continue // no exact split to wait for; and it counts per endpoint
		}
		t.Run(policy.Name, func(t *testing.T) {
			h := newHarness(t, policy.Name, `{}`, true)
			eps := []resolver.Endpoint{ep("a:1", 1, ""), ep("b:1", 2, ""), ep("c:1", 3, "")}
			h.update(eps...)
			p := h.waitForSplit(600, want)
			if !pickerinfo.Stripes(p) {
				t.Skip("the policy's pickers do not count on a shared counter")
			}
			split(p, 100_000)
			// The update rebuilds the picker at once: had the picks
			// above reported contention, it would be striped.
			h.update(eps...)
			s, _, _ := h.cc.State()
			if pickerinfo.Striped(s.Picker) {
				t.Fatal("one goroutine picking moved the picker to striped counters")
			}
			before := h.cc.NewSubConnCount()

			stop := workers.Start(2, func() bool {
				s, _, _ := h.cc.State()
				split(s.Picker, 1000)
				return true
			})
			h.waitFor("a striped picker", func(s balancer.State) bool { return pickerinfo.Striped(s.Picker) })
			stop()
			// One goroutine on a striped picker keeps to one stripe, an
			// exact round robin of its own.
			h.waitForSplit(600, want)
			if got := h.cc.NewSubConnCount(); got != before {
				t.Errorf("moving to striped counters created %d SubConns, want 0", got-before)
			}
		})
	}
}

// TestTableMatchesTheRegistry checks what the table of policies
// promises: every policy is registered under its name, and Names and
// Policies agree.
func TestTableMatchesTheRegistry(t *testing.T) {
	names := etcdlb.Names()
	for i, p := range etcdlb.Policies() {
		if p.Name != names[i] {
			t.Errorf("Policies()[%d] is %s, Names()[%d] %s", i, p.Name, i, names[i])
		}
		if balancer.Get(p.Name) == nil {
			t.Errorf("%s is not registered", p.Name)
		}
	}
}

// TestParamsAreNotConfigFields checks that no policy's own config field
// has the name of a field of Config, which every policy takes.
func TestParamsAreNotConfigFields(t *testing.T) {
	for policy, fields := range etcdlb.ParamFields() {
		for _, field := range fields {
			if slices.Contains(etcdlb.ConfigFields(), field) {
				t.Errorf("%s: param %q is a field of Config", policy, field)
			}
		}
	}
}
