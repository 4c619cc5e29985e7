package registry

import (
	"log/slog"
	"time"

	"github.com/etcdlb/etcdlb/internal/etcdutil"
)

// Option configures Register and the operator's helpers (List, Services
// and the overrides); those use only WithPrefix and WithLogger.
type Option func(*options)

type options struct {
	etcdutil.Common
	ttl      time.Duration
	takeover bool
	observer Observer // never nil
}

func newOptions(opts []Option) options {
	o := options{Common: etcdutil.Defaults(), ttl: 10 * time.Second, observer: nopObserver{}}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// Observer is told what a registration does; *metrics.Metrics is one (see
// WithMetrics). Its methods are called from the Registrar's goroutine, or
// Register's, and must not block.
type Observer interface {
	// RegistrationState is called on every state change ("registering",
	// "registered", "closed").
	RegistrationState(service, addr, state string)
	// LeaseRenewed is called for every keepalive response.
	LeaseRenewed(service, addr string)
	// LeaseFailed is called when the lease is lost or cannot be granted.
	LeaseFailed(service, addr string, err error)
	// Reregistered is called each time the key is written under a new lease
	// after the first.
	Reregistered(service, addr string)
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

// WithRequestTimeout bounds each etcd request of a Registrar (default 5s).
func WithRequestTimeout(d time.Duration) Option {
	return func(o *options) { o.SetRequestTimeout(d) }
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

// WithMetrics reports the registration's metrics to obs, a
// *metrics.Metrics. Nil means no metrics.
func WithMetrics(obs Observer) Option {
	return func(o *options) {
		o.observer = obs
		if obs == nil {
			o.observer = nopObserver{}
		}
	}
}

type nopObserver struct{}

func (nopObserver) RegistrationState(string, string, string) {}
func (nopObserver) LeaseRenewed(string, string)              {}
func (nopObserver) LeaseFailed(string, string, error)        {}
func (nopObserver) Reregistered(string, string)              {}
