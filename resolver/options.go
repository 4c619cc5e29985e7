package resolver

import (
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/etcdlb/etcdlb/internal/hooks"
	"github.com/etcdlb/etcdlb/metrics"
)

// Option configures NewBuilder, Register and the helpers. Options that do
// not apply to a function are ignored by it.
type Option func(*options)

type options struct {
	prefix             string
	logger             *slog.Logger
	backoffMin         time.Duration
	backoffMax         time.Duration
	requestTimeout     time.Duration
	resolveNowEvery    time.Duration
	ttl                time.Duration
	revisionCheckEvery time.Duration
	dataLossGrace      time.Duration
	metrics            *metrics.Metrics
	takeover           bool
	resolverHooks      hooks.Resolver
	regHooks           hooks.Registration
}

func newOptions(opts []Option) options {
	o := options{
		logger:             slog.Default(),
		backoffMin:         100 * time.Millisecond,
		backoffMax:         5 * time.Second,
		requestTimeout:     5 * time.Second,
		resolveNowEvery:    time.Second,
		ttl:                10 * time.Second,
		revisionCheckEvery: 5 * time.Second,
		dataLossGrace:      30 * time.Second,
	}
	for _, opt := range opts {
		opt(&o)
	}
	return o
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
func WithPrefix(prefix string) Option { return func(o *options) { o.prefix = prefix } }

// WithLogger sets the logger; the default is slog.Default(). Nil discards.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l == nil {
			l = slog.New(slog.DiscardHandler)
		}
		o.logger = l
	}
}

// WithBackoff bounds the jittered exponential backoff between retries of a
// failed etcd request (defaults 100ms and 5s). Zero keeps a default.
func WithBackoff(lo, hi time.Duration) Option {
	return func(o *options) {
		if lo > 0 {
			o.backoffMin = lo
		}
		if hi > 0 {
			o.backoffMax = hi
		}
		o.backoffMax = max(o.backoffMax, o.backoffMin)
	}
}

// WithRequestTimeout bounds each etcd request (default 5s).
func WithRequestTimeout(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.requestTimeout = d
		}
	}
}

// WithResolveNowInterval is the least time between two re-lists asked for by
// ResolveNow (default 1s).
func WithResolveNowInterval(d time.Duration) Option {
	return func(o *options) { o.resolveNowEvery = max(d, 0) }
}

// WithTTL sets a registration's lease TTL (default 10s, at least 1s, rounded
// to seconds). A crashed server's key disappears within it.
func WithTTL(d time.Duration) Option {
	return func(o *options) { o.ttl = max(d, time.Second) }
}

// WithTakeover lets Register replace a key that another registration's lease
// holds (another server with the same address, or this server's previous run
// that crashed less than a TTL ago). Without it Register refuses such a key
// with ErrKeyHeld. The other Registrar keeps its lease and gets the key back
// when this one's ends.
func WithTakeover() Option { return func(o *options) { o.takeover = true } }

// WithMetrics reports the resolver's and the registration's metrics to m,
// and passes m on to the load-balancing policies of every ClientConn the
// resolver serves (see metrics.Attach).
func WithMetrics(m *metrics.Metrics) Option {
	return func(o *options) {
		o.metrics = m
		o.resolverHooks = m.ResolverHooks()
		o.regHooks = m.RegistrationHooks()
	}
}

// backoff returns the jittered wait before retry n (0-based): exponential
// from min, capped at max, with full jitter in [d/2, d).
func (o *options) backoff(n int) time.Duration {
	d := o.backoffMin
	for i := 0; i < n && d < o.backoffMax; i++ {
		d *= 2
	}
	d = min(d, o.backoffMax)
	return d/2 + rand.N(d/2+1)
}
