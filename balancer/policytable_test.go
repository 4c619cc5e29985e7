package balancer

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/resolver"

	"github.com/etcdlb/etcdlb/endpoint"
	"github.com/etcdlb/etcdlb/internal/fakecc"
	"github.com/etcdlb/etcdlb/picker"
)

// This file proves the package doc's promise that a policy is its picker
// file plus one table entry: a toy fourth policy, written here as a new
// policy would be written in its own files, with a config field and
// per-endpoint state of its own, runs on the core with no change to it.

const toyName = "etcdlb_test_fewest_ended"

// toyEntry is the toy policy's table entry.
var toyEntry = &policy{
	name:        toyName,
	weights:     WeightsIgnored,
	perEndpoint: func(*picker.Counters) (any, func(balancer.DoneInfo)) { s := new(toyState); return s, s.done },
	params:      toyParams{Bias: 1},
	algorithm:   func(p Params) picker.Algorithm { return toyAlgorithm{bias: p.(toyParams).Bias} },
}

// toyParams are the toy's own config field: toyBias, from 1 (the default)
// to 100; above counts as 100.
type toyParams struct {
	Bias int `json:"toyBias,omitempty"`
}

func (p toyParams) check() (Params, error) {
	if p.Bias < 1 {
		return nil, fmt.Errorf("config field toyBias: %d, must be at least 1", p.Bias)
	}
	p.Bias = min(p.Bias, 100)
	return p, nil
}

// toyState is what the toy keeps per endpoint: the calls that ended there.
type toyState struct{ ended atomic.Int64 }

func (s *toyState) done(balancer.DoneInfo) { s.ended.Add(1) }

// toyAlgorithm picks the endpoint whose calls ended fewest times, the first
// on a tie.
type toyAlgorithm struct{ bias int }

func (a toyAlgorithm) NewPicker(eps []picker.Endpoint, _ *picker.Shared) balancer.Picker {
	p := &toyPicker{states: make([]*toyState, len(eps)), results: make([]balancer.PickResult, len(eps))}
	for i, e := range eps {
		p.states[i] = e.State.(*toyState) // once per build, not per pick
		p.results[i], _ = e.Picker.Pick(balancer.PickInfo{})
		p.results[i].Done = e.Done
	}
	return p
}

type toyPicker struct {
	states  []*toyState
	results []balancer.PickResult
}

func (p *toyPicker) Pick(balancer.PickInfo) (balancer.PickResult, error) {
	best := 0
	for i, s := range p.states {
		if s.ended.Load() < p.states[best].ended.Load() {
			best = i
		}
	}
	return p.results[best], nil
}

// withToy adds the toy to the table for the test.
func withToy(t *testing.T) {
	saved := policies
	policies = append(policies[:len(policies):len(policies)], toyEntry)
	t.Cleanup(func() { policies = saved })
}

func TestToyPolicyConfig(t *testing.T) {
	withToy(t)
	for _, tt := range []struct {
		policy, config, want string // want: the parsed config, or an error's substring
	}{
		{toyName, `{}`, `{"localZoneWait":"1s","localZoneMinReady":1,"toyBias":1}`},
		{toyName, `{"toyBias":500,"localZone":"z"}`, `{"localZone":"z","localZoneMinReady":1,"localZoneWait":"1s","toyBias":100}`},
		{toyName, `{"toyBias":0}`, toyName + ": config field toyBias: 0, must be at least 1"},
		{toyName, `{"toyBias":"x"}`, "config field toyBias: json: cannot unmarshal"},
		{toyName, `{"choiceCount":3}`, "config field choiceCount: only etcdlb_least_inflight takes it"},
		{toyName, `{"bias":3}`, `config field "bias": unknown; the fields are localZone, localZoneMinReady, localZoneWait, toyBias`},
		{WeightedName, `{"toyBias":3}`, "config field toyBias: only " + toyName + " takes it"},
		{LeastInflightName, `{"toyBias":3,"choiceCount":4}`, "config field toyBias: only " + toyName + " takes it"},
		{LeastInflightName, `{"toyB":3}`, "the fields are localZone, localZoneMinReady, localZoneWait, choiceCount"},
	} {
		p := policyNamed(tt.policy)
		c, err := builder{p}.ParseConfig(json.RawMessage(tt.config))
		if err != nil {
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("%s %s: error %v, want one containing %q", tt.policy, tt.config, err, tt.want)
			}
			continue
		}
		got, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		if !equalJSON(t, got, tt.want) {
			t.Errorf("%s %s: parsed to %s, want %s", tt.policy, tt.config, got, tt.want)
		}
	}
}

func policyNamed(name string) *policy {
	for _, p := range policies {
		if p.name == name {
			return p
		}
	}
	return nil
}

func equalJSON(t *testing.T, a []byte, b string) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		t.Fatalf("not JSON: %s, %s", a, b)
	}
	return fmt.Sprint(x) == fmt.Sprint(y)
}

// TestToyPolicyKeepsItsStateAcrossPickers checks that the core gives the
// toy one state per endpoint, that the state outlives pickers, that the
// Done the entry bound from it is attached to the picks, and that a pick
// and its Done allocate nothing.
func TestToyPolicyKeepsItsStateAcrossPickers(t *testing.T) {
	withToy(t)
	cfg, err := builder{toyEntry}.ParseConfig(json.RawMessage(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	cc := fakecc.New()
	cc.AutoReady = true
	b := builder{toyEntry}.Build(cc, balancer.BuildOptions{})
	t.Cleanup(func() { b.Close(); cc.Close() })
	update := func(addrs ...string) {
		var eps []resolver.Endpoint
		for _, a := range addrs {
			eps = append(eps, endpoint.New(a, endpoint.Attrs{Weight: 1}))
		}
		if err := b.UpdateClientConnState(balancer.ClientConnState{ResolverState: resolver.State{Endpoints: eps}, BalancerConfig: cfg}); err != nil {
			t.Fatal(err)
		}
	}
	update("a:1", "b:1")
	p := waitForToyPicker(t, cc, 2)
	if got := toySplit(p, 10); got != "a:1=5 b:1=5" {
		t.Fatalf("10 picks over a and b went %s, want 5 each", got)
	}
	// c joins: a and b keep the 5 ends counted in their state, so c takes
	// the next 5 picks.
	update("a:1", "b:1", "c:1")
	p = waitForToyPicker(t, cc, 3)
	if got := toySplit(p, 5); got != "c:1=5" {
		t.Fatalf("5 picks after c joined went %s, want all to c", got)
	}
	if n := testing.AllocsPerRun(100, func() {
		r, _ := p.Pick(balancer.PickInfo{})
		r.Done(balancer.DoneInfo{})
	}); n != 0 {
		t.Errorf("a pick and its Done allocate %v times, want 0", n)
	}
}

// waitForToyPicker waits for a READY toy picker over n endpoints.
func waitForToyPicker(t *testing.T, cc *fakecc.ClientConn, n int) *toyPicker {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		s, _, changed := cc.State()
		if p, ok := s.Picker.(*toyPicker); ok && s.ConnectivityState == connectivity.Ready && len(p.states) == n {
			return p
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("no READY picker over %d endpoints; last state %v", n, s.ConnectivityState)
		}
	}
}

// toySplit makes n picks, ending each, and says where they went, "a:1=5 b:1=5".
func toySplit(p balancer.Picker, n int) string {
	got := map[string]int{}
	for range n {
		r, err := p.Pick(balancer.PickInfo{})
		if err != nil {
			got["error"]++
			continue
		}
		got[r.SubConn.(*fakecc.SubConn).Addr]++
		r.Done(balancer.DoneInfo{})
	}
	var s []string
	for _, a := range []string{"a:1", "b:1", "c:1", "error"} {
		if got[a] > 0 {
			s = append(s, fmt.Sprintf("%s=%d", a, got[a]))
		}
	}
	return strings.Join(s, " ")
}

// TestConfigMadeByHand checks that a Config not made by the policy's parser
// neither panics nor picks with another policy's fields: without params it
// takes the policy's defaults; with another policy's it is an error.
func TestConfigMadeByHand(t *testing.T) {
	withToy(t)
	b := &lb{policy: policyNamed(LeastInflightName)}
	cfg, err := b.config(&Config{LocalZoneMinReady: 1})
	if err != nil || cfg.Params() != (LeastInflightParams{ChoiceCount: 2}) {
		t.Errorf("a Config without params: got %+v, %v; want choiceCount 2", cfg, err)
	}
	if _, err := b.config(&Config{params: toyParams{Bias: 1}}); err == nil || !strings.Contains(err.Error(), "another policy") {
		t.Errorf("a Config with the toy's params: error %v, want one about another policy", err)
	}
}
