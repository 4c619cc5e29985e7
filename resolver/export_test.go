package resolver

import "time"

// testObserver calls its functions, where set.
type testObserver struct {
	nopObserver
	rejected  func(reason string)
	synced    func()
	compacted func()
}

func (o *testObserver) ResolverRejected(_, reason string) {
	if o.rejected != nil {
		o.rejected(reason)
	}
}

func (o *testObserver) ResolverSynced(string, time.Time) {
	if o.synced != nil {
		o.synced()
	}
}

func (o *testObserver) ResolverCompacted(string) {
	if o.compacted != nil {
		o.compacted()
	}
}

// testHooks returns o's testObserver, putting one in place of any other.
func testHooks(o *options) *testObserver {
	t, ok := o.observer.(*testObserver)
	if !ok {
		t = &testObserver{}
		o.observer = t
	}
	return t
}

// WithHooksForTest reports every rejected value's reason to f.
func WithHooksForTest(f func(reason string)) Option {
	return func(o *options) { testHooks(o).rejected = f }
}

// WithSyncedHookForTest calls f after every list or watch response.
func WithSyncedHookForTest(f func()) Option {
	return func(o *options) { testHooks(o).synced = f }
}

// WithRevisionCheckForTest sets how often the watch checks etcd's revision.
func WithRevisionCheckForTest(d time.Duration) Option {
	return func(o *options) { o.revisionCheckEvery = d }
}

// WithCompactedHookForTest calls f when the watch was compacted.
func WithCompactedHookForTest(f func()) Option {
	return func(o *options) { testHooks(o).compacted = f }
}
