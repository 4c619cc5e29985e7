package reliability_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	etcdlb "github.com/etcdlb/etcdlb/balancer"
	"github.com/etcdlb/etcdlb/internal/embedetcd"
	"github.com/etcdlb/etcdlb/internal/poll"
)

// retryConfig is a service config with policy, WaitForReady and a retry
// policy for UNAVAILABLE, the README's for idempotent methods: the library
// never retries by itself, the caller may. The method config's name must be
// the called service's, or it does not apply.
func retryConfig(policy string) string {
	return fmt.Sprintf(`{"loadBalancingConfig":[{%q:{}}],"methodConfig":[{"name":[{"service":"grpc.testing.TestService"}],`+
		`"waitForReady":true,"retryPolicy":{"maxAttempts":3,"initialBackoff":"0.01s","maxBackoff":"0.05s","backoffMultiplier":2,`+
		`"retryableStatusCodes":["UNAVAILABLE"]}}]}`, policy)
}

// TestFlakyBackend has one of three backends answer UNAVAILABLE to every
// fourth call it serves. Without a retry policy every policy passes those
// failures to the caller (the flaky backend answers fast, so least-inflight
// does not avoid it); with a retry policy for UNAVAILABLE in the service
// config nearly none reaches the caller.
func TestFlakyBackend(t *testing.T) {
	e := newEnv(t, embedetcd.Options{})
	const service = "flaky"
	bs, addrs := e.startBackends(t, service, 5*time.Second, 1, 1, 1)
	flaky := bs[0]
	flaky.SetFailEvery(4)
	cli := e.newClient(t)
	var cs []*client
	for _, p := range clientPolicies {
		cs = append(cs, dial(t, cli, service, p, ""))
	}
	for _, p := range clientPolicies {
		c := dial(t, cli, service, p, retryConfig(p))
		c.policy += "+retry"
		cs = append(cs, c)
	}
	waitAddrs(t, cs, addrs...)
	ls := startLoads(t, cs, 2)
	waitAllMore(t, ls, 1000)
	for _, l := range ls {
		l.stop()
	}

	failed := map[string]int64{}
	for _, l := range ls {
		failed[l.c.policy] = l.failed.Load()
	}
	for _, l := range ls {
		l.logFailures(t)
		_, toFlaky := l.c.track.counts(flaky.Addr)
		var total int64
		for _, b := range bs {
			_, n := l.c.track.counts(b.Addr)
			total += n
		}
		report(t, figures{scenario: "flaky_backend", policy: l.c.policy, calls: l.calls.Load(), failed: l.failed.Load(),
			extra: fmt.Sprintf("flaky_share=%.3f fail_every=4", float64(toFlaky)/float64(total))})
		retry := strings.HasSuffix(l.c.policy, "+retry")
		switch {
		case retry:
			// A retry is picked afresh and lands on the flaky backend again
			// only rarely: with round robin when the clients' calls
			// interleave so, with least-inflight when it is idle, as it
			// fails fast. Three attempts all failing is rarer still.
			without := failed[strings.TrimSuffix(l.c.policy, "+retry")]
			if n := l.failed.Load(); n*20 > without {
				t.Errorf("%s: %d calls failed with a retry policy, %d without: want 20 times fewer", l.c.policy, n, without)
			}
		case l.failed.Load() == 0:
			t.Errorf("%s: no call failed, but a backend answered UNAVAILABLE to %d of them", l.c.policy, toFlaky/4)
		}
		for _, f := range l.failuresSince(time.Time{}) {
			if status.Code(f.err) != codes.Unavailable || !strings.Contains(f.err.Error(), "flaky") {
				t.Errorf("%s: a call failed other than by the flaky backend: %v", l.c.policy, f.err)
				break
			}
		}
	}
	// Which calls meet the flaky backend is chance.
	checkNoWorse(t, ls, time.Time{}, true)
}

// hangTimeout is the deadline of each call in TestHangingBackend: the calls
// the hanging backend takes end with it.
const hangTimeout = 2 * time.Second

// TestHangingBackend has one of three backends take every call and never
// answer. Round robin and weighted keep sending it its share, and those calls
// end at their deadline, so the callers' goroutines pile up on it and the
// call rate collapses; least-inflight stops sending it calls once its
// in-flight count is above the others', and sends it nearly nothing: it is
// measured over 3000 of its calls once it has one stuck there.
func TestHangingBackend(t *testing.T) {
	e := newEnv(t, embedetcd.Options{})
	const service = "hanging"
	bs, addrs := e.startBackends(t, service, 5*time.Second, 1, 1, 1)
	hung := bs[2]
	hung.SetDelay(time.Hour)
	cs := dialAll(t, e.newClient(t), service)
	waitAddrs(t, cs, addrs...)
	var ls []*load
	for _, c := range cs {
		ls = append(ls, startLoad(t, c, 8, hangTimeout))
	}
	var li *load
	for _, l := range ls {
		if l.c.policy == etcdlb.LeastInflightName {
			li = l
		}
	}
	// Warm up until least-inflight has calls stuck on the hanging backend,
	// then measure over its next 3000 calls.
	if !poll.Until(waitTimeout, func() bool { inflight, _ := li.c.track.counts(hung.Addr); return inflight >= 1 }) {
		t.Fatal("least-inflight sent no call to the hanging backend")
	}
	type snap struct{ calls, failed, toHung int64 }
	before := make([]snap, len(ls))
	for i, l := range ls {
		_, n := l.c.track.counts(hung.Addr)
		before[i] = snap{l.calls.Load(), l.failed.Load(), n}
	}
	start := time.Now()
	li.waitMore(t, 3000)
	window := time.Since(start)
	after := make([]snap, len(ls))
	for i, l := range ls {
		_, n := l.c.track.counts(hung.Addr)
		after[i] = snap{l.calls.Load(), l.failed.Load(), n}
	}
	for _, l := range ls {
		l.stop()
	}

	for i, l := range ls {
		calls, toHung := after[i].calls-before[i].calls, after[i].toHung-before[i].toHung
		failed := after[i].failed - before[i].failed
		share := float64(toHung) / float64(max(calls, 1))
		_, totalHung := l.c.track.counts(hung.Addr)
		report(t, figures{scenario: "hanging_backend", policy: l.c.policy, calls: l.calls.Load(), failed: l.failed.Load(),
			extra: fmt.Sprintf("sent_to_hanging=%d window=%v window_calls=%d window_failed=%d window_sent_to_hanging=%d window_share=%.3f call_timeout=%v",
				totalHung, window.Round(time.Millisecond), calls, failed, toHung, share, hangTimeout)})
		switch l.c.policy {
		case etcdlb.LeastInflightName:
			if share > 0.02 {
				t.Errorf("least-inflight sent %d of %d calls (%.1f%%) to the hanging backend, want at most 2%%", toHung, calls, 100*share)
			}
		default:
			if totalHung == 0 {
				t.Errorf("%s sent no call to the hanging backend: the scenario did not run", l.c.policy)
			}
		}
	}
	// Which calls meet the hanging backend is chance.
	checkNoWorse(t, ls, time.Time{}, true)
}
