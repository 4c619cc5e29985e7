package resolver

import (
	"time"

	"github.com/etcdlb/etcdlb/internal/hooks"
)

// WithHooksForTest reports every rejected value's reason to f.
func WithHooksForTest(f func(reason string)) Option {
	return hooks.ResolverOption(&hooks.Resolver{Rejected: func(_, reason string) { f(reason) }}).(Option)
}

// WithSyncedHookForTest calls f after every list or watch response.
func WithSyncedHookForTest(f func()) Option {
	return func(o *options) { o.resolverHooks.Synced = func(string, time.Time) { f() } }
}

// WithProgressIntervalForTest sets how often the watch asks for progress.
func WithProgressIntervalForTest(d time.Duration) Option {
	return func(o *options) { o.progressEvery = d }
}

// WithCompactedHookForTest calls f when the watch was compacted.
func WithCompactedHookForTest(f func()) Option {
	return func(o *options) { o.resolverHooks.Compacted = func(string) { f() } }
}
