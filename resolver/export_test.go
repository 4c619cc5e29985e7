package resolver

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcdlb/etcdlb/internal/hooks"
)

// WithHooksForTest reports every rejected value's reason to f.
func WithHooksForTest(f func(reason string)) Option {
	return func(o *options) { o.resolverHooks = hooks.Resolver{Rejected: func(_, reason string) { f(reason) }} }
}

// WithSyncedHookForTest calls f after every list or watch response.
func WithSyncedHookForTest(f func()) Option {
	return func(o *options) { o.resolverHooks.Synced = func(string, time.Time) { f() } }
}

// WithRevisionCheckForTest sets how often the watch checks etcd's revision.
func WithRevisionCheckForTest(d time.Duration) Option {
	return func(o *options) { o.revisionCheckEvery = d }
}

// WithCompactedHookForTest calls f when the watch was compacted.
func WithCompactedHookForTest(f func()) Option {
	return func(o *options) { o.resolverHooks.Compacted = func(string) { f() } }
}

// DecodeFastForTest is the fast decoder alone.
func DecodeFastForTest(b []byte) (Value, bool) { return decodeFast(b) }

// DecodeSlowForTest is the encoding/json decoder alone (no address checks).
func DecodeSlowForTest(b []byte) (Value, error) {
	var raw anyValue
	if err := json.Unmarshal(b, &raw); err != nil {
		return Value{}, err
	}
	var v Value
	if r, d := v.fill(&raw); r != "" {
		return Value{}, errors.New(d)
	}
	return v, nil
}

// WithStateHookForTest reports every registration state change.
func WithStateHookForTest(f func(state string)) Option {
	return func(o *options) { o.regHooks = hooks.Registration{State: func(_, _, s string) { f(s) }} }
}

// ClaimForTest has r claim its key under lease, as a re-registration after
// prev does.
func ClaimForTest(ctx context.Context, r *Registrar, lease, prev clientv3.LeaseID) error {
	_, err := r.claim(ctx, lease, prev)
	return err
}
