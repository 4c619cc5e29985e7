package balancer_test

import (
	"encoding/json"
	"testing"

	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/connectivity"

	etcdlb "github.com/etcdlb/etcdlb/balancer"
	"github.com/etcdlb/etcdlb/internal/fakecc"
	"github.com/etcdlb/etcdlb/internal/poll"
)

// TestPoliciesRecordOnGRPCMetricsRecorder checks that every policy reports
// its rebuilds, endpoints and failed picks through the ClientConn's
// MetricsRecorder, where grpc's OpenTelemetry plugin reads them.
func TestPoliciesRecordOnGRPCMetricsRecorder(t *testing.T) {
	for _, policy := range etcdlb.Names() {
		t.Run(policy, func(t *testing.T) {
			h, rec := newRecordingHarness(t, policy, `{}`)
			target := h.cc.Target()
			h.update(ep("a:1", 1, ""), ep("b:1", 0, ""))
			h.waitForSplit(10, map[string]int{"a:1": 10})
			if !poll.Until(waitTimeout, func() bool {
				ready, _ := rec.Value("grpc.lb.etcdlb.endpoints", target, policy, "ready")
				drained, _ := rec.Value("grpc.lb.etcdlb.endpoints", target, policy, "drained")
				return ready == 1 && drained == 1
			}) {
				t.Error("grpc.lb.etcdlb.endpoints never reported 1 ready and 1 drained endpoint")
			}
			if n, _ := rec.Value("grpc.lb.etcdlb.picker_rebuilds", target, policy); n < 1 {
				t.Errorf("grpc.lb.etcdlb.picker_rebuilds = %v, want at least 1", n)
			}
			if n, _ := rec.Value("grpc.lb.etcdlb.picker_rebuild_duration", target, policy); n < 1 {
				t.Errorf("grpc.lb.etcdlb.picker_rebuild_duration has %v observations, want at least 1", n)
			}

			h.update() // no endpoints: every pick fails
			s := h.waitFor("a failing picker", func(s balancer.State) bool { return s.ConnectivityState == connectivity.TransientFailure })
			split(s.Picker, 3)
			if n, _ := rec.Value("grpc.lb.etcdlb.pick_failures", target, policy, "unavailable"); n != 3 {
				t.Errorf("grpc.lb.etcdlb.pick_failures{unavailable} = %v after 3 failed picks, want 3", n)
			}
		})
	}
}

// TestZoneSpillRecordedOnGRPCMetricsRecorder checks the spill count.
func TestZoneSpillRecordedOnGRPCMetricsRecorder(t *testing.T) {
	policy := etcdlb.Names()[0]
	h, rec := newRecordingHarness(t, policy, `{"localZone":"z9","localZoneWait":"0s"}`)
	h.update(ep("a:1", 1, "z1"))
	h.waitForSplit(4, map[string]int{"a:1": 4})
	if n, _ := rec.Value("grpc.lb.etcdlb.zone_spills", h.cc.Target(), policy); n != 1 {
		t.Errorf("grpc.lb.etcdlb.zone_spills = %v, want 1", n)
	}
}

// newRecordingHarness is newHarness, SubConns ready on their own, with a
// MetricsRecorder that keeps what the policy records.
func newRecordingHarness(t *testing.T, policy, config string) (*harness, *fakecc.Recorder) {
	t.Helper()
	rec := fakecc.NewRecorder()
	cc := fakecc.New()
	cc.AutoReady, cc.Recorder = true, rec
	cfg, err := balancer.Get(policy).(balancer.ConfigParser).ParseConfig(json.RawMessage(config))
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, cc: cc, cfg: cfg, lb: balancer.Get(policy).Build(cc, balancer.BuildOptions{})}
	t.Cleanup(func() { h.lb.Close(); cc.Close() })
	return h, rec
}
