package resolver

import (
	"log/slog"
	"time"

	"github.com/etcdlb/etcdlb/internal/etcdutil"
	"github.com/etcdlb/etcdlb/metrics"
)

// Option configures NewBuilder and NewWatcher.
type Option func(*options)

type options struct {
	etcdutil.Common
	resolveNowEvery    time.Duration
	revisionCheckEvery time.Duration
	dataLossGrace      time.Duration
	observer           observer         // never nil
	metrics            *metrics.Metrics // passed on to the policies; nil: none
}

func newOptions(opts []Option) options {
	o := options{
		Common:             etcdutil.Defaults(),
		resolveNowEvery:    time.Second,
		revisionCheckEvery: 5 * time.Second,
		dataLossGrace:      30 * time.Second,
		observer:           nopObserver{},
	}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// observer is told what a resolver does; *metrics.Metrics is one (see
// WithMetrics). Its methods are called from the resolver's goroutine and
// must not block. (Unexported until a user needs another one: the metrics
// also reach the policies, which an observer alone would not do.)
type observer interface {
	// ResolverUpdated is called after each UpdateState, with the number of
	// endpoints.
	ResolverUpdated(service string, endpoints int)
	// ResolverRejected is called once per rejected key value, with the reason.
	ResolverRejected(service, reason string)
	// ResolverWatchRestarted is called when a watch ends and the resolver
	// re-lists.
	ResolverWatchRestarted(service string)
	// ResolverCompacted is called when the watch's revision was compacted.
	ResolverCompacted(service string)
	// ResolverSynced is called after each successful list or watch response.
	ResolverSynced(service string, at time.Time)
	// ResolverEtcdError is called for every failed etcd request.
	ResolverEtcdError(service string, err error)
}

// WithDataLossGrace sets how long, after etcd lost its data (restored from
// an old backup or restarted empty), the resolver keeps serving the
// endpoints it had that are not in etcd yet: their servers re-register
// within a few seconds, and until then an empty or shrunken registry says
// more about etcd than about the servers. An endpoint that reappears is
// served from etcd again at once. 0 serves only what etcd has; the default
// is 30s.
func WithDataLossGrace(d time.Duration) Option {
	return func(o *options) { o.dataLossGrace = max(d, 0) }
}

// WithPrefix sets the key prefix, e.g. "/services/"; the default is "", the
// layout of etcd's own naming/endpoints.
func WithPrefix(prefix string) Option { return func(o *options) { o.Prefix = prefix } }

// WithLogger sets the logger; the default is slog.Default(). Nil discards.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.SetLogger(l) } }

// WithBackoff bounds the jittered exponential backoff between retries of a
// failed etcd request (defaults 100ms and 5s). Zero keeps a default.
func WithBackoff(lo, hi time.Duration) Option {
	return func(o *options) { o.SetBackoff(lo, hi) }
}

// WithRequestTimeout bounds each etcd request (default 5s).
func WithRequestTimeout(d time.Duration) Option {
	return func(o *options) { o.SetRequestTimeout(d) }
}

// WithResolveNowInterval is the least time between two re-lists asked for by
// ResolveNow (default 1s).
func WithResolveNowInterval(d time.Duration) Option {
	return func(o *options) { o.resolveNowEvery = max(d, 0) }
}

// WithMetrics reports the resolver's metrics to m, and passes m on to the
// load-balancing policies of every ClientConn the resolver serves (see
// metrics.Attach). Nil means no metrics.
func WithMetrics(m *metrics.Metrics) Option {
	return func(o *options) {
		o.metrics = m
		o.observer = nopObserver{}
		if m != nil {
			o.observer = m
		}
	}
}

type nopObserver struct{}

func (nopObserver) ResolverUpdated(string, int)      {}
func (nopObserver) ResolverRejected(string, string)  {}
func (nopObserver) ResolverWatchRestarted(string)    {}
func (nopObserver) ResolverCompacted(string)         {}
func (nopObserver) ResolverSynced(string, time.Time) {}
func (nopObserver) ResolverEtcdError(string, error)  {}
