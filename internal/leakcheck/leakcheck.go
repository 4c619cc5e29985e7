// Package leakcheck finds goroutines that a test leaves running, with
// go.uber.org/goleak: a Snapshot is goleak.IgnoreCurrent (goroutines alive
// at Take are recognised by id however their stacks changed since), and
// goleak finds the others and prints their stacks.
//
//	defer leakcheck.Take().Check(t) // or: leakcheck.Verify(t)
//
// What this package adds is the bounded wait. goleak v1.3.0 retries for
// about 0.4 s in all and has no option to wait longer, while the
// goroutines of a closed ClientConn or etcd watch can take seconds to end
// under -race on a busy machine; Check asks goleak again until Timeout.
package leakcheck

import (
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/etcdlb/etcdlb/internal/poll"
)

// Timeout bounds how long Check waits for the goroutines to end.
const Timeout = 10 * time.Second

// ignored are goroutines that are not the code under test's and that goleak
// does not leave out by itself: other tests' (parallel and sub-tests) and
// the fuzzing coordinator's. (goleak leaves out os/signal's.)
var ignored = []goleak.Option{
	goleak.IgnoreAnyFunction("testing.tRunner"),
	goleak.IgnoreAnyFunction("testing.(*T).Run"),
	goleak.IgnoreAnyFunction("testing.runFuzzing"),
	goleak.IgnoreAnyFunction("testing.(*F).Fuzz.func1"),
}

// Snapshot is the set of goroutines alive when it was taken.
type Snapshot struct {
	current goleak.Option
}

// Take notes the goroutines alive now.
func Take() Snapshot { return Snapshot{current: goleak.IgnoreCurrent()} }

// Verify takes a snapshot now and checks it when t's cleanups run. Call it
// before anything that registers a cleanup closing what it starts: cleanups
// run last-registered first, so the check then runs after them.
func Verify(t testing.TB) {
	t.Helper()
	s := Take()
	t.Cleanup(func() { s.Check(t) })
}

// Check waits up to Timeout until every goroutine alive, but the caller's
// own, was in the snapshot, and otherwise fails t with the others' stacks.
func (s Snapshot) Check(t testing.TB) {
	t.Helper()
	if err := s.wait(Timeout); err != nil {
		t.Errorf("leakcheck: goroutines still running %v after the test closed everything: %v", Timeout, err)
	}
}

// wait returns goleak's error for the goroutines that are not in the
// snapshot and still run after d, nil when there are none.
func (s Snapshot) wait(d time.Duration) error {
	opts := append([]goleak.Option{s.current}, ignored...)
	var err error
	poll.Until(d, func() bool {
		err = goleak.Find(opts...)
		return err == nil
	})
	return err
}
