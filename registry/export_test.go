package registry

import (
	"context"

	clientv3 "go.etcd.io/etcd/client/v3"
)

type stateObserver struct {
	nopObserver
	f func(state string)
}

func (o stateObserver) RegistrationState(_, _, s string) { o.f(s) }

// WithStateHookForTest reports every registration state change.
func WithStateHookForTest(f func(state string)) Option {
	return func(o *options) { o.observer = stateObserver{f: f} }
}

// ClaimForTest has r claim its key under lease, as a re-registration after
// prev does.
func ClaimForTest(ctx context.Context, r *Registrar, lease, prev clientv3.LeaseID) error {
	_, err := r.claim(ctx, lease, prev)
	return err
}

// SetTTLConcurrencyForTest sets how many TimeToLive requests List has in
// flight, and returns a func that restores it.
func SetTTLConcurrencyForTest(n int) (restore func()) {
	old := ttlConcurrency
	ttlConcurrency = n
	return func() { ttlConcurrency = old }
}
