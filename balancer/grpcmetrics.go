package balancer

import (
	"time"

	estats "google.golang.org/grpc/experimental/stats"
)

// The policies' figures as grpc-go's own policies report theirs (see
// weighted_round_robin's grpc.lb.wrr.* and pick_first's grpc.lb.pick_first.*):
// through the ClientConn's MetricsRecorder, so that grpc's OpenTelemetry
// plugin sees them when they are enabled in its options; like grpc-go's
// load-balancing metrics, none is on by default. They are recorded when a
// picker is built and when a pick fails, never on a successful pick. The
// per-endpoint figures (picks, calls in flight) are Prometheus-only (package
// metrics), read at scrape time.
var (
	rebuildsMetric = estats.RegisterInt64Count(estats.MetricDescriptor{
		Name:        "grpc.lb.etcdlb.picker_rebuilds",
		Description: "EXPERIMENTAL. Pickers an etcdlb policy built.",
		Unit:        "{picker}",
		Labels:      []string{"grpc.target", "grpc.lb.etcdlb.policy"},
	})
	rebuildSecondsMetric = estats.RegisterFloat64Histo(estats.MetricDescriptor{
		Name:        "grpc.lb.etcdlb.picker_rebuild_duration",
		Description: "EXPERIMENTAL. Time an etcdlb policy took to build a picker.",
		Unit:        "s",
		Labels:      []string{"grpc.target", "grpc.lb.etcdlb.policy"},
		Bounds:      []float64{1e-6, 4e-6, 16e-6, 64e-6, 256e-6, 1e-3, 4e-3, 16e-3, 64e-3, 256e-3},
	})
	spillsMetric = estats.RegisterInt64Count(estats.MetricDescriptor{
		Name:        "grpc.lb.etcdlb.zone_spills",
		Description: "EXPERIMENTAL. Times picks left the local zone because it had too few ready endpoints.",
		Unit:        "{spill}",
		Labels:      []string{"grpc.target", "grpc.lb.etcdlb.policy"},
	})
	endpointsMetric = estats.RegisterInt64Gauge(estats.MetricDescriptor{
		Name:        "grpc.lb.etcdlb.endpoints",
		Description: "EXPERIMENTAL. Endpoints of an etcdlb policy by state (ready, drained, connecting, failing), when its picker was last built.",
		Unit:        "{endpoint}",
		Labels:      []string{"grpc.target", "grpc.lb.etcdlb.policy", "grpc.lb.etcdlb.state"},
	})
	pickFailuresMetric = estats.RegisterInt64Count(estats.MetricDescriptor{
		Name:        "grpc.lb.etcdlb.pick_failures",
		Description: "EXPERIMENTAL. Picks that found no ready endpoint: queued while endpoints connect, or unavailable.",
		Unit:        "{pick}",
		Labels:      []string{"grpc.target", "grpc.lb.etcdlb.policy", "grpc.lb.etcdlb.reason"},
	})
)

// The states of an endpoint as the metrics report them, indices of
// endpointStates and stateCounts.
const (
	stateReady = iota
	stateDrained
	stateConnecting
	stateFailing
)

var endpointStates = [...]string{stateReady: "ready", stateDrained: "drained", stateConnecting: "connecting", stateFailing: "failing"}

// stateCounts counts a picker's endpoints by state (endpointStates).
type stateCounts [len(endpointStates)]int64

// recordRebuild records a picker built in d over endpoints in the states
// n; startedSpilling is true when the local zone just lost its traffic.
func (b *lb) recordRebuild(d time.Duration, n stateCounts, startedSpilling bool) {
	r, target, policy := b.cc.MetricsRecorder(), b.target, b.policy.name
	if r == nil {
		return
	}
	rebuildsMetric.Record(r, 1, target, policy)
	rebuildSecondsMetric.Record(r, d.Seconds(), target, policy)
	if startedSpilling {
		spillsMetric.Record(r, 1, target, policy)
	}
	for i, state := range endpointStates {
		endpointsMetric.Record(r, n[i], target, policy, state)
	}
}
