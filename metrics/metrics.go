// Package metrics exposes what etcdlb's policies, resolver and registrations
// are doing as Prometheus metrics, registered on a Registerer the caller
// chooses; the package never touches the global registry by itself.
//
//	m, err := metrics.New(prometheus.DefaultRegisterer) // or a registry of your own
//	builder := resolver.NewBuilder(cli, resolver.WithMetrics(m))
//
// The resolver passes m on to the policies of every ClientConn it serves
// (through Attach), so one option turns on all three families. The pick
// path does nothing for metrics: round robin and weighted picks are counted
// from the pickers' own sequence counters at scrape time, least-inflight's
// beside its in-flight counter; everything else is computed at scrape time
// or when a picker is rebuilt.
package metrics

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/resolver"
)

// Metrics holds etcdlb's collectors. One Metrics may serve any number of
// ClientConns, resolvers and registrations; their series add up.
type Metrics struct {
	endpointLabels bool

	pickFailures   *prometheus.CounterVec
	rebuilds       *prometheus.CounterVec
	rebuildSeconds *prometheus.HistogramVec
	spills         *prometheus.CounterVec

	resolverUpdates   *prometheus.CounterVec
	resolverEndpoints *prometheus.GaugeVec
	rejected          *prometheus.CounterVec
	watchRestarts     *prometheus.CounterVec
	compactions       *prometheus.CounterVec
	lastSync          *prometheus.GaugeVec
	etcdErrors        *prometheus.CounterVec

	regState     *prometheus.GaugeVec
	renewals     *prometheus.CounterVec
	leaseFails   *prometheus.CounterVec
	reregistered *prometheus.CounterVec

	balancers *balancerCollector
}

// Option configures New.
type Option func(*Metrics)

// WithoutEndpointLabels drops the endpoint label from the per-endpoint
// series (picks, in-flight calls), which are then summed per zone: use it
// for services with thousands of endpoints.
func WithoutEndpointLabels() Option { return func(m *Metrics) { m.endpointLabels = false } }

// New creates etcdlb's collectors and registers them on reg. Calling New
// again with the same reg is fine: it reuses the collectors already there.
func New(reg prometheus.Registerer, opts ...Option) (*Metrics, error) {
	if reg == nil {
		return nil, errors.New("metrics: nil Registerer; pass prometheus.DefaultRegisterer for the global one")
	}
	m := &Metrics{endpointLabels: true}
	for _, o := range opts {
		o(m)
	}
	pb := []string{"policy", "service"}
	var err error
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return register(reg, &err, name, prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels))
	}
	gauge := func(name, help string, labels ...string) *prometheus.GaugeVec {
		return register(reg, &err, name, prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels))
	}

	m.pickFailures = counter("etcdlb_balancer_pick_failures_total",
		"Picks that found no ready endpoint: queued while endpoints connect, or failed with Unavailable.", "policy", "service", "reason")
	m.rebuilds = counter("etcdlb_balancer_picker_rebuilds_total", "Pickers built.", pb...)
	m.rebuildSeconds = register(reg, &err, "etcdlb_balancer_picker_rebuild_duration_seconds", prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "etcdlb_balancer_picker_rebuild_duration_seconds",
		Help:    "Time to build a picker.",
		Buckets: prometheus.ExponentialBuckets(1e-6, 4, 10), // 1µs .. 262ms
	}, []string{"policy"}))
	m.spills = counter("etcdlb_balancer_zone_spills_total",
		"Times picks left the local zone because it had too few ready endpoints.", pb...)

	m.resolverUpdates = counter("etcdlb_resolver_updates_total", "Endpoint sets pushed to gRPC.", "service")
	m.resolverEndpoints = gauge("etcdlb_resolver_endpoints", "Endpoints in the last set pushed.", "service")
	m.rejected = counter("etcdlb_resolver_rejected_values_total", "etcd values skipped, by reason.", "service", "reason")
	m.watchRestarts = counter("etcdlb_resolver_watch_restarts_total", "Watches that ended and were followed by a re-list.", "service")
	m.compactions = counter("etcdlb_resolver_compactions_total", "Watches whose revision had been compacted.", "service")
	m.lastSync = gauge("etcdlb_resolver_last_sync_timestamp_seconds",
		"Unix time of the last successful list or watch response; time() minus it is the staleness.", "service")
	m.etcdErrors = counter("etcdlb_resolver_etcd_errors_total", "Failed etcd requests.", "service")

	m.regState = gauge("etcdlb_registration_state",
		"1 for the registration's current state (registering, registered, closed).", "service", "addr", "state")
	m.renewals = counter("etcdlb_registration_lease_renewals_total", "Keepalive responses.", "service", "addr")
	m.leaseFails = counter("etcdlb_registration_lease_failures_total", "Leases lost or not granted.", "service", "addr")
	m.reregistered = counter("etcdlb_registration_reregistrations_total", "Registrations written again under a new lease.", "service", "addr")

	m.balancers = register(reg, &err, "etcdlb_balancer_picks_total and the other per-endpoint series", newBalancerCollector(m.endpointLabels))
	if err != nil {
		return nil, err
	}
	return m, nil
}

// register registers c on reg, or returns the collector already registered
// there in its place, which must be of c's type. Once *err is set it does
// nothing; it sets *err when c cannot be registered, with what name is
// taken by what.
func register[C prometheus.Collector](reg prometheus.Registerer, err *error, name string, c C) C {
	if *err != nil {
		return c
	}
	e := reg.Register(c)
	if e == nil {
		return c
	}
	var are prometheus.AlreadyRegisteredError
	if !errors.As(e, &are) {
		*err = fmt.Errorf("metrics: registering %s: %w", name, e)
		return c
	}
	existing, ok := are.ExistingCollector.(C)
	if !ok {
		*err = fmt.Errorf("metrics: %s is already registered on this Registerer as a %T, not as etcdlb's %T", name, are.ExistingCollector, c)
		return c
	}
	return existing
}

// The methods below are how the resolver and the registry report to m:
// m is a resolver.Observer and a registry.Observer. Each is a no-op on a
// nil *Metrics.

// ResolverUpdated counts an endpoint set pushed, of n endpoints.
func (m *Metrics) ResolverUpdated(service string, n int) {
	if m == nil {
		return
	}
	service = label(service)
	m.resolverUpdates.WithLabelValues(service).Inc()
	m.resolverEndpoints.WithLabelValues(service).Set(float64(n))
}

// ResolverRejected counts a rejected etcd value.
func (m *Metrics) ResolverRejected(service, reason string) {
	if m != nil {
		m.rejected.WithLabelValues(label(service), label(reason)).Inc()
	}
}

// ResolverWatchRestarted counts a watch that ended.
func (m *Metrics) ResolverWatchRestarted(service string) {
	if m != nil {
		m.watchRestarts.WithLabelValues(label(service)).Inc()
	}
}

// ResolverCompacted counts a watch whose revision was compacted.
func (m *Metrics) ResolverCompacted(service string) {
	if m != nil {
		m.compactions.WithLabelValues(label(service)).Inc()
	}
}

// ResolverSynced records a good list or watch response.
func (m *Metrics) ResolverSynced(service string, at time.Time) {
	if m != nil {
		m.lastSync.WithLabelValues(label(service)).Set(float64(at.UnixNano()) / 1e9)
	}
}

// ResolverEtcdError counts a failed etcd request.
func (m *Metrics) ResolverEtcdError(service string, _ error) {
	if m != nil {
		m.etcdErrors.WithLabelValues(label(service)).Inc()
	}
}

// registrationStates are the values of etcdlb_registration_state's label.
var registrationStates = []string{"registering", "registered", "closed"}

// RegistrationState sets the registration's state.
func (m *Metrics) RegistrationState(service, addr, state string) {
	if m == nil {
		return
	}
	service, addr = label(service), label(addr)
	for _, s := range registrationStates {
		v := 0.0
		if s == state {
			v = 1
		}
		m.regState.WithLabelValues(service, addr, s).Set(v)
	}
}

// LeaseRenewed counts a keepalive response.
func (m *Metrics) LeaseRenewed(service, addr string) {
	if m != nil {
		m.renewals.WithLabelValues(label(service), label(addr)).Inc()
	}
}

// LeaseFailed counts a lease lost or not granted.
func (m *Metrics) LeaseFailed(service, addr string, _ error) {
	if m != nil {
		m.leaseFails.WithLabelValues(label(service), label(addr)).Inc()
	}
}

// Reregistered counts a registration written again under a new lease.
func (m *Metrics) Reregistered(service, addr string) {
	if m != nil {
		m.reregistered.WithLabelValues(label(service), label(addr)).Inc()
	}
}

type attrKey struct{}

// Attach returns s carrying m, for the policies of the ClientConn that
// receives s. etcdlb's resolvers do it when given metrics; a resolver of
// your own can do it too.
func Attach(s resolver.State, m *Metrics) resolver.State {
	s.Attributes = s.Attributes.WithValue(attrKey{}, m)
	return s
}

// From returns the Metrics attached to s, or nil.
func From(s resolver.State) *Metrics {
	m, _ := s.Attributes.Value(attrKey{}).(*Metrics)
	return m
}

// Balancer returns the handles one policy instance records with.
func (m *Metrics) Balancer(policy, service string, src EndpointSource) *Balancer {
	policy, service = label(policy), label(service)
	b := &Balancer{
		m:           m,
		queued:      m.pickFailures.WithLabelValues(policy, service, "queued"),
		unavailable: m.pickFailures.WithLabelValues(policy, service, "unavailable"),
		rebuilds:    m.rebuilds.WithLabelValues(policy, service),
		rebuildSecs: m.rebuildSeconds.WithLabelValues(policy),
		spills:      m.spills.WithLabelValues(policy, service),
		source:      &source{policy: policy, service: service, src: src},
	}
	m.balancers.add(b.source)
	return b
}

// Balancer records for one policy instance. Its methods are called on
// picker rebuilds and failed picks, never on a successful pick.
type Balancer struct {
	m           *Metrics
	queued      prometheus.Counter
	unavailable prometheus.Counter
	rebuilds    prometheus.Counter
	rebuildSecs prometheus.Observer
	spills      prometheus.Counter
	source      *source
}

// QueuedPicks and UnavailablePicks count failed picks; a failing picker
// holds one of them.
func (b *Balancer) QueuedPicks() prometheus.Counter      { return b.queued }
func (b *Balancer) UnavailablePicks() prometheus.Counter { return b.unavailable }

// Rebuilt records a picker built in d; spilled is true when the local zone
// just lost its traffic to the other zones.
func (b *Balancer) Rebuilt(d time.Duration, startedSpilling bool) {
	b.rebuilds.Inc()
	b.rebuildSecs.Observe(d.Seconds())
	if startedSpilling {
		b.spills.Inc()
	}
}

// Close stops reporting the instance's per-endpoint series.
func (b *Balancer) Close() { b.m.balancers.remove(b.source) }

// EndpointState is what a policy tells of one endpoint at scrape time.
type EndpointState struct {
	Addr, Zone string
	// State is one of "ready", "connecting", "failing", "drained".
	State string
	// Weight is the endpoint's weight as the policy sees it.
	Weight uint32
	// Picks is the number of calls picked on the endpoint so far.
	Picks uint64
	// Inflight is the calls in flight, when the policy counts them.
	Inflight    int64
	HasInflight bool
	// Spilled is true, on every endpoint, while picks leave the local zone.
	Spilled bool
}

// EndpointSource reports a policy instance's endpoints at scrape time. It
// must not block for long.
type EndpointSource interface {
	Endpoints(report func(EndpointState))
}

type source struct {
	policy, service string
	src             EndpointSource
}

// balancerCollector reads every live policy instance at scrape time and
// sums series with the same labels (two ClientConns of one service).
type balancerCollector struct {
	endpointLabels                              bool
	picks, inflight, weight, endpoints, spilled *prometheus.Desc

	mu      sync.Mutex
	sources map[*source]struct{}
}

func newBalancerCollector(endpointLabels bool) *balancerCollector {
	epLabels := []string{"policy", "service", "zone"}
	if endpointLabels {
		epLabels = append(epLabels, "endpoint")
	}
	return &balancerCollector{
		endpointLabels: endpointLabels,
		picks:          prometheus.NewDesc("etcdlb_balancer_picks_total", "Calls picked, per endpoint (or zone).", epLabels, nil),
		inflight:       prometheus.NewDesc("etcdlb_balancer_inflight_calls", "Calls in flight, per endpoint (or zone); least-inflight only.", epLabels, nil),
		weight:         prometheus.NewDesc("etcdlb_balancer_endpoint_weight", "Weight of each endpoint as the policy sees it; only with endpoint labels.", epLabels, nil),
		endpoints: prometheus.NewDesc("etcdlb_balancer_endpoints", "Endpoints by state and zone.",
			[]string{"policy", "service", "zone", "state"}, nil),
		spilled: prometheus.NewDesc("etcdlb_balancer_zone_spilled", "1 while picks leave the local zone.",
			[]string{"policy", "service"}, nil),
		sources: map[*source]struct{}{},
	}
}

func (c *balancerCollector) add(s *source) {
	c.mu.Lock()
	c.sources[s] = struct{}{}
	c.mu.Unlock()
}

func (c *balancerCollector) remove(s *source) {
	c.mu.Lock()
	delete(c.sources, s)
	c.mu.Unlock()
}

func (c *balancerCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.picks
	ch <- c.inflight
	ch <- c.weight
	ch <- c.endpoints
	ch <- c.spilled
}

type series struct {
	desc   *prometheus.Desc
	labels string // joined, for the map key
}

func (c *balancerCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	sources := make([]*source, 0, len(c.sources))
	for s := range c.sources {
		sources = append(sources, s)
	}
	c.mu.Unlock()

	type value struct {
		kind   prometheus.ValueType
		v      float64
		labels []string
	}
	sums := map[series]*value{}
	add := func(d *prometheus.Desc, kind prometheus.ValueType, v float64, labels ...string) {
		k := series{d, joinLabels(labels)}
		if s, ok := sums[k]; ok {
			if d == c.weight {
				s.v = max(s.v, v) // ClientConns of one service see the same weight
			} else {
				s.v += v
			}
			return
		}
		sums[k] = &value{kind, v, labels}
	}
	for _, s := range sources {
		spilled := 0.0
		s.src.Endpoints(func(e EndpointState) {
			zone := label(e.Zone)
			labels := []string{s.policy, s.service, zone}
			if c.endpointLabels {
				labels = append(labels, label(e.Addr))
			}
			add(c.picks, prometheus.CounterValue, float64(e.Picks), labels...)
			if c.endpointLabels {
				add(c.weight, prometheus.GaugeValue, float64(e.Weight), labels...)
			}
			if e.HasInflight {
				add(c.inflight, prometheus.GaugeValue, float64(e.Inflight), labels...)
			}
			add(c.endpoints, prometheus.GaugeValue, 1, s.policy, s.service, zone, e.State)
			if e.Spilled {
				spilled = 1
			}
		})
		add(c.spilled, prometheus.GaugeValue, spilled, s.policy, s.service)
	}
	keys := make([]series, 0, len(sums))
	for k := range sums {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].labels < keys[j].labels })
	for _, k := range keys {
		v := sums[k]
		ch <- prometheus.MustNewConstMetric(k.desc, v.kind, v.v, v.labels...)
	}
}

// label makes s safe as a label value: client_golang panics on invalid
// UTF-8, and service names and addresses come from targets and etcd keys.
func label(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }

func joinLabels(labels []string) string {
	n := 0
	for _, l := range labels {
		n += len(l) + 1
	}
	b := make([]byte, 0, n)
	for _, l := range labels {
		b = append(b, l...)
		b = append(b, 0)
	}
	return string(b)
}
