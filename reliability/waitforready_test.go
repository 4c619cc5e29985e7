package reliability_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/etcdlb/etcdlb/internal/differential"
	"github.com/etcdlb/etcdlb/internal/embedetcd"
)

// wfrGap is how long the service has no backend that can take a call.
const wfrGap = time.Second

// TestWaitForReady leaves a service without a backend that can take a call
// for about a second, under WaitForReady calls (4 goroutines a client) and
// fail-fast calls (1 goroutine) from a client of each policy and of grpc-go's
// round_robin, on the same etcd resolver and servers: the clients dialled
// before the only backend registers, and the only backend hard-stopped and
// restarted on its address. No WaitForReady call fails, as none fails with
// round_robin; fail-fast calls fail with Unavailable and the policy's
// message saying why.
func TestWaitForReady(t *testing.T) {
	t.Run("registers_after_dial", func(t *testing.T) {
		e := newEnv(t, embedetcd.Options{})
		const service = "late"
		cs := dialAll(t, e.newClient(t), service)
		wait, fast := wfrLoads(t, cs)
		time.Sleep(wfrGap) // the fault itself: nothing registered
		b := e.startBackend(t, service, 1, 5*time.Second)
		waitAddrs(t, cs, b.Addr)
		checkWaitForReady(t, "wait_for_ready_late_backend", wait, fast, ": no endpoints", time.Time{}, nil)
	})
	t.Run("hard_restart", func(t *testing.T) {
		e := newEnv(t, embedetcd.Options{})
		const service = "restart"
		b := e.startBackend(t, service, 1, 5*time.Second)
		cs := dialAll(t, e.newClient(t), service)
		waitAddrs(t, cs, b.Addr)
		wait, fast := wfrLoads(t, cs)
		waitAllMore(t, wait, 100)
		// Calls in flight on the connection fail, WaitForReady or not (grpc
		// does not retry a call the server may have seen): they are allowed,
		// the calls started after the backend is gone are not.
		inflight := make([]int64, len(cs))
		for i, c := range cs {
			inflight[i], _ = c.track.counts(b.Addr)
		}
		b.Stop() // new connections are refused until the restart
		gone := time.Now()
		for i, c := range cs {
			n, _ := c.track.counts(b.Addr)
			inflight[i] = max(inflight[i], n)
		}
		time.Sleep(wfrGap) // the fault itself
		if err := b.Restart(); err != nil {
			t.Fatal(err)
		}
		checkWaitForReady(t, "wait_for_ready_hard_restart", wait, fast, ": all 1 endpoints failing", gone, inflight)
	})
}

// wfrLoads starts, on each client, WaitForReady calls from 4 goroutines and
// fail-fast calls from one.
func wfrLoads(t *testing.T, cs []*client) (wait, fast []*load) {
	for _, c := range cs {
		wait = append(wait, startLoad(t, c, 4, callTimeout, grpc.WaitForReady(true)))
		fast = append(fast, startLoad(t, c, 1, callTimeout))
	}
	return wait, fast
}

// checkWaitForReady lets the loads run until each has made 200 more calls
// than it had, stops them and checks them: no WaitForReady call started at or
// after since failed, and none more than with round_robin; before it at
// most inflight[i] of client i's (the calls in flight on a stopped
// backend); fail-fast calls failed with Unavailable, some of them with the
// etcdlb policy's message, its name followed by want.
func checkWaitForReady(t *testing.T, scenario string, wait, fast []*load, want string, since time.Time, inflight []int64) {
	t.Helper()
	waitAllMore(t, wait, 200)
	for i := range wait {
		wait[i].stop()
		fast[i].stop()
	}
	for i, l := range wait {
		policy := l.c.policy
		l.logFailures(t)
		late := int64(len(l.failuresSince(since)))
		extra := fmt.Sprintf("gap=%v fail_fast_calls=%d fail_fast_failed=%d", wfrGap, fast[i].calls.Load(), fast[i].failed.Load())
		if inflight != nil {
			extra += fmt.Sprintf(" inflight_at_stop=%d failed_after_stop=%d", inflight[i], late)
		}
		report(t, figures{scenario: scenario, policy: policy, calls: l.calls.Load(), failed: l.failed.Load(), extra: extra})
		if late != 0 {
			t.Errorf("%s: %d of %d WaitForReady calls failed", policy, late, l.calls.Load())
		}
		if n := l.failed.Load() - late; inflight != nil && n > inflight[i] {
			t.Errorf("%s: %d WaitForReady calls in flight at the stop failed, more than the %d in flight", policy, n, inflight[i])
		}
		fs := fast[i].failuresSince(time.Time{})
		if len(fs) == 0 {
			t.Errorf("%s: no fail-fast call failed: the service had a backend throughout", policy)
		}
		saidWhy := false
		for _, f := range fs {
			if status.Code(f.err) != codes.Unavailable {
				t.Errorf("%s: a fail-fast call failed with %v, want code Unavailable", policy, f.err)
				break
			}
			saidWhy = saidWhy || strings.Contains(status.Convert(f.err).Message(), policy+want)
		}
		if !saidWhy && policy != differential.Reference && len(fs) > 0 {
			t.Errorf("%s: no fail-fast call failed with %q, e.g. %v", policy, policy+want, fs[0].err)
		}
	}
	checkNoWorse(t, wait, since, false)
}
