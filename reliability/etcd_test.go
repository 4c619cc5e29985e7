package reliability_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcdlb/etcdlb/internal/embedetcd"
	"github.com/etcdlb/etcdlb/registry"
)

// outage is how long TestEtcdOutage keeps etcd down.
const outage = 10 * time.Second

// TestEtcdOutage stops the whole (one-member) etcd for 10 s under load and
// restarts it on its data: no call fails, the registrations are still there,
// and a change made after the restart reaches every client.
func TestEtcdOutage(t *testing.T) {
	e := newEnv(t, embedetcd.Options{})
	const service = "outage"
	bs, _, cs, ls := e.underLoad(t, service, 5*time.Second, 1, 2, 3)

	e.etcd.Stop(0)
	down := make([]int64, len(ls))
	for i, l := range ls {
		down[i] = l.calls.Load()
	}
	time.Sleep(outage) // the fault itself
	during := make([]int64, len(ls))
	for i, l := range ls {
		during[i] = l.calls.Load() - down[i]
	}
	if err := e.etcd.Restart(0); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()

	// The registrations are still there (kept, or written again by their
	// Registrars if the client gave their lease up meanwhile).
	e.waitRegistered(t, service, len(bs))
	registered := time.Since(restarted)

	// A change after the restart reaches every client: an operator's weight.
	if err := registry.SetOverride(e.ctx, e.cli, service, bs[0].Addr, 7); err != nil {
		t.Fatal(err)
	}
	waitWeight(t, cs, bs[0].Addr, 7)
	recovery := time.Since(restarted)
	waitAllMore(t, ls, 200)

	for i, l := range ls {
		l.stop()
		l.logFailures(t)
		report(t, figures{scenario: "etcd_outage", policy: l.c.policy, calls: l.calls.Load(), failed: l.failed.Load(),
			recovery: recovery, extra: fmt.Sprintf("outage=%v calls_during_outage=%d registrations_back_after=%v",
				outage, during[i], registered.Round(time.Millisecond))})
		if n := l.failed.Load(); n != 0 {
			t.Errorf("%s: %d of %d calls failed with etcd down", l.c.policy, n, l.calls.Load())
		}
		if during[i] == 0 {
			t.Errorf("%s: no call completed while etcd was down", l.c.policy)
		}
	}
	checkNoWorse(t, ls, time.Time{}, false)
}

// TestEtcdDataLoss restarts etcd empty under load: every backend registers
// again by itself, and every client follows etcd again.
func TestEtcdDataLoss(t *testing.T) {
	e := newEnv(t, embedetcd.Options{})
	const service = "dataloss"
	bs, addrs, cs, ls := e.underLoad(t, service, 3*time.Second, 1, 2, 3)

	if err := e.etcd.RestartEmpty(0); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	e.waitRegistered(t, service, len(bs))
	reregistered := time.Since(restarted)
	// The clients read the new etcd: an override written there reaches them
	// (the resolver sees the revision went back and lists again).
	for i, b := range bs {
		if err := registry.SetOverride(e.ctx, e.cli, service, b.Addr, uint32(10+i)); err != nil {
			t.Fatal(err)
		}
	}
	for i, b := range bs {
		waitWeight(t, cs, b.Addr, uint32(10+i))
	}
	recovery := time.Since(restarted)
	waitAddrs(t, cs, addrs...)
	for _, b := range bs {
		waitCalled(t, b.Server, 20)
	}

	waitAllMore(t, ls, 200)

	// Until every backend is back in etcd, a client that lists finds fewer
	// or none; the resolver keeps serving the endpoints etcd lost
	// (WithDataLossGrace) until they re-register, so no call fails.
	for _, l := range ls {
		l.stop()
		l.logFailures(t)
		report(t, figures{scenario: "etcd_data_loss", policy: l.c.policy, calls: l.calls.Load(), failed: l.failed.Load(),
			recovery: recovery, extra: fmt.Sprintf("reregistered_after=%v", reregistered.Round(time.Millisecond))})
		if n := l.failed.Load(); n != 0 {
			t.Errorf("%s: %d calls failed while etcd was empty or after", l.c.policy, n)
		}
	}
	checkNoWorse(t, ls, time.Time{}, false)
}

// TestEtcdClusterMemberLoss stops the leader of a three-member etcd, then a
// follower, each restarted after a weight change made while it was down:
// no call fails and every change reaches the clients.
func TestEtcdClusterMemberLoss(t *testing.T) {
	e := newEnv(t, embedetcd.Options{Members: 3})
	const service = "members"
	bs, _, cs, ls := e.underLoad(t, service, 5*time.Second, 1, 2, 3)

	var recoveries []time.Duration
	weight := uint32(10)
	for _, role := range []string{"leader", "follower"} {
		m := member(t, e, role)
		stopping := time.Now()
		e.etcd.Stop(m)
		start := time.Now()
		t.Logf("%s m%d took %v to stop", role, m, start.Sub(stopping))
		weight++
		setOverride(t, e, service, bs[0].Addr, weight)
		waitWeight(t, cs, bs[0].Addr, weight)
		recoveries = append(recoveries, time.Since(start))
		waitAllMore(t, ls, 200)
		if err := e.etcd.Restart(m); err != nil {
			t.Fatal(err)
		}
		weight++
		setOverride(t, e, service, bs[0].Addr, weight)
		waitWeight(t, cs, bs[0].Addr, weight)
		waitAllMore(t, ls, 200)
		t.Logf("%s m%d stopped and restarted; weight change seen with it down after %v", role, m, recoveries[len(recoveries)-1])
	}

	for _, l := range ls {
		l.stop()
		l.logFailures(t)
		report(t, figures{scenario: "etcd_member_loss", policy: l.c.policy, calls: l.calls.Load(), failed: l.failed.Load(),
			recovery: max(recoveries[0], recoveries[1]), extra: fmt.Sprintf("weight_change_with_leader_down=%v with_follower_down=%v",
				recoveries[0].Round(time.Millisecond), recoveries[1].Round(time.Millisecond))})
		if n := l.failed.Load(); n != 0 {
			t.Errorf("%s: %d of %d calls failed while etcd members were lost", l.c.policy, n, l.calls.Load())
		}
	}
	checkNoWorse(t, ls, time.Time{}, false)
}

// member returns the index of the leader, or of a follower.
func member(t *testing.T, e *env, role string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(e.ctx, waitTimeout)
	defer cancel()
	for {
		leader, follower := -1, -1
		for i, ep := range e.etcd.Endpoints() {
			st, err := e.cli.Status(ctx, ep)
			if err != nil {
				continue
			}
			if st.Leader == st.Header.MemberId {
				leader = i
			} else if st.Leader != 0 {
				follower = i
			}
		}
		if role == "leader" && leader >= 0 {
			return leader
		}
		if role == "follower" && follower >= 0 {
			return follower
		}
		if ctx.Err() != nil {
			t.Fatalf("no %s in the etcd cluster within %v", role, waitTimeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// setOverride writes an operator weight, retrying while etcd elects a
// leader.
func setOverride(t *testing.T, e *env, service, addr string, w uint32) {
	t.Helper()
	ctx, cancel := context.WithTimeout(e.ctx, waitTimeout)
	defer cancel()
	for {
		octx, ocancel := context.WithTimeout(clientv3.WithRequireLeader(ctx), 2*time.Second)
		err := registry.SetOverride(octx, e.cli, service, addr, w)
		ocancel()
		if err == nil {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("override %s=%d: %v", addr, w, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
