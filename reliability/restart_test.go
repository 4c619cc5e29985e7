package reliability_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/etcdlb/etcdlb/internal/embedetcd"
)

// TestRollingRestart restarts five backends one at a time, gracefully
// (deregister, wait until no client picks it, drain, stop, start,
// register), under load from a client of each policy: no call fails, and
// calls are made without wait-for-ready.
func TestRollingRestart(t *testing.T) {
	e := newEnv(t, embedetcd.Options{})
	const service = "rolling"
	bs, _, cs, ls := e.underLoad(t, service, 5*time.Second, 1, 2, 3, 4, 5)

	var slowest time.Duration
	for _, b := range bs {
		start := time.Now()
		if err := b.reg.Close(); err != nil {
			t.Fatalf("deregister %s: %v", b.Addr, err)
		}
		waitHas(t, cs, b.Addr, false)
		// No client picks it any more: once the calls picked just before
		// have landed, its count stands still while each client makes 200
		// more calls.
		waitAllMore(t, ls, 20)
		served := b.Calls()
		waitAllMore(t, ls, 200)
		if got := b.Calls(); got != served {
			t.Errorf("%s served %d calls after every client dropped it", b.Addr, got-served)
		}
		b.GracefulStop() // drains the calls in flight
		if err := b.Restart(); err != nil {
			t.Fatal(err)
		}
		e.register(t, b)
		waitHas(t, cs, b.Addr, true)
		waitCalled(t, b.Server, 50)
		slowest = max(slowest, time.Since(start))
	}
	waitAllMore(t, ls, 200)

	for _, l := range ls {
		l.stop()
		l.logFailures(t)
		report(t, figures{scenario: "rolling_restart", policy: l.c.policy, calls: l.calls.Load(), failed: l.failed.Load(),
			recovery: slowest, extra: fmt.Sprintf("backends=%d restarts=%d", len(bs), len(bs))})
		if n := l.failed.Load(); n != 0 {
			t.Errorf("%s: %d of %d calls failed during the rolling restart", l.c.policy, n, l.calls.Load())
		}
	}
	checkNoWorse(t, ls, time.Time{}, false)
}
