package resolver_test

import (
	"runtime"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/resolver"

	"github.com/etcdlb/etcdlb/internal/etcdtest"
	"github.com/etcdlb/etcdlb/keyspace"
	etcdlbresolver "github.com/etcdlb/etcdlb/resolver"
)

func TestResolverInitialUpdateSortedAndScoped(t *testing.T) {
	e := etcdtest.NewEnv(t)
	e.Put(t, "echo/10.0.0.2:80", `{"addr":"10.0.0.2:80","weight":2,"zone":"b","metadata":{"v":"1"}}`)
	e.Put(t, "echo/10.0.0.1:80", `{"addr":"10.0.0.1:80","weight":1,"zone":"a"}`)
	e.Put(t, "echo/10.0.0.3:80", `10.0.0.3:80`)
	e.Put(t, "echo2/10.0.0.9:80", `{"addr":"10.0.0.9:80"}`)
	e.Put(t, "echo/sub/10.0.0.8:80", `{"addr":"10.0.0.8:80"}`)
	e.Put(t, "ech/10.0.0.7:80", `{"addr":"10.0.0.7:80"}`)

	cc, _ := etcdtest.Build(t, e.Cli, "echo")
	s := cc.WaitFor(t, "first state", func(last *resolver.State, _ []error) bool { return last != nil })
	want := "10.0.0.1:80/1/a 10.0.0.2:80/2/b/v=1 10.0.0.3:80/1/"
	if got := etcdtest.Describe(s); got != want {
		t.Fatalf("first state %q, want %q", got, want)
	}
	if len(s.Addresses) != 3 || s.Addresses[0].Addr != "10.0.0.1:80" {
		t.Fatalf("Addresses = %v", s.Addresses)
	}
	// Changes arrive; the initial update was the only one before them.
	e.Put(t, "echo/10.0.0.1:80", `{"addr":"10.0.0.1:80","weight":5,"zone":"a"}`)
	cc.WaitEndpoints(t, "10.0.0.1:80/5/a 10.0.0.2:80/2/b/v=1 10.0.0.3:80/1/")
	e.Del(t, "echo/10.0.0.3:80")
	cc.WaitEndpoints(t, "10.0.0.1:80/5/a 10.0.0.2:80/2/b/v=1")
	if n := cc.NumStates(); n != 3 {
		t.Errorf("%d updates, want 3 (initial, put, delete)", n)
	}
}

func TestResolverEmptyServiceReportsError(t *testing.T) {
	e := etcdtest.NewEnv(t)
	cc, _ := etcdtest.Build(t, e.Cli, "nobody")
	cc.WaitFor(t, "empty state and error", func(last *resolver.State, errs []error) bool {
		return last != nil && len(last.Endpoints) == 0 && len(errs) > 0 &&
			strings.Contains(errs[len(errs)-1].Error(), `"nobody" has no endpoints`)
	})
	e.Put(t, "nobody/10.0.0.1:80", `{"addr":"10.0.0.1:80"}`)
	cc.WaitEndpoints(t, "10.0.0.1:80/1/")
}

func TestResolverOverrideWins(t *testing.T) {
	e := etcdtest.NewEnv(t)
	e.Put(t, "echo/10.0.0.1:80", `{"addr":"10.0.0.1:80","weight":3}`)
	e.Put(t, "_etcdlb/override/echo/10.0.0.1:80", `{"weight":7}`)
	cc, _ := etcdtest.Build(t, e.Cli, "echo")
	cc.WaitEndpoints(t, "10.0.0.1:80/7/")
	e.Put(t, "_etcdlb/override/echo/10.0.0.1:80", `{"weight":0}`)
	cc.WaitEndpoints(t, "10.0.0.1:80/0/")
	e.Put(t, "_etcdlb/override/echo/10.0.0.1:80", `{"weight":-1}`) // rejected: own weight
	cc.WaitEndpoints(t, "10.0.0.1:80/3/")
	e.Put(t, "_etcdlb/override/echo/10.0.0.1:80", `{"weight":9}`)
	cc.WaitEndpoints(t, "10.0.0.1:80/9/")
	e.Del(t, "_etcdlb/override/echo/10.0.0.1:80")
	cc.WaitEndpoints(t, "10.0.0.1:80/3/")
}

func TestResolverPrefix(t *testing.T) {
	e := etcdtest.NewEnv(t)
	e.Put(t, "/svc/echo/10.0.0.1:80", `{"addr":"10.0.0.1:80","weight":3}`)
	e.Put(t, "echo/10.0.0.2:80", `{"addr":"10.0.0.2:80","weight":3}`)
	e.Put(t, "/svc/_etcdlb/override/echo/10.0.0.1:80", `{"weight":4}`)
	cc, _ := etcdtest.Build(t, e.Cli, "echo", etcdlbresolver.WithPrefix("/svc/"))
	cc.WaitEndpoints(t, "10.0.0.1:80/4/")
}

func TestBuildRejectsReservedService(t *testing.T) {
	b := etcdlbresolver.NewBuilder(nil)
	for _, svc := range []string{"", "_etcdlb", "_etcdlb/override/x"} {
		if _, err := b.Build(resolver.Target{URL: *etcdtest.MustURL("etcd:///" + svc)}, etcdtest.NewCC(), resolver.BuildOptions{}); err == nil {
			t.Errorf("Build(%q) succeeded", svc)
		}
	}
}

// TestResolverMalformedValues puts each bad value beside a valid endpoint:
// the valid one is served and the bad one skipped.
func TestResolverMalformedValues(t *testing.T) {
	e := etcdtest.NewEnv(t)
	for _, tc := range []struct {
		name, id, value string
		reason          keyspace.Reason
	}{
		{"malformed json", "10.0.0.9:80", `{"addr":`, keyspace.ReasonMalformed},
		{"addr wrong type", "10.0.0.9:80", `{"addr":9}`, keyspace.ReasonWrongType},
		{"weight string", "10.0.0.9:80", `{"addr":"10.0.0.9:80","weight":"5"}`, keyspace.ReasonWrongType},
		{"negative weight", "10.0.0.9:80", `{"addr":"10.0.0.9:80","weight":-1}`, keyspace.ReasonBadWeight},
		{"fractional weight", "10.0.0.9:80", `{"addr":"10.0.0.9:80","weight":1.5}`, keyspace.ReasonBadWeight},
		{"absurd weight", "10.0.0.9:80", `{"addr":"10.0.0.9:80","weight":1e300}`, keyspace.ReasonBadWeight},
		{"weight above max", "10.0.0.9:80", `{"addr":"10.0.0.9:80","weight":1000001}`, keyspace.ReasonBadWeight},
		{"empty addr", "10.0.0.9:80", `{"addr":""}`, keyspace.ReasonBadAddr},
		{"unparsable addr", "x", `{"addr":"10.0.0.9"}`, keyspace.ReasonBadAddr},
		{"bad port", "x", `{"addr":"10.0.0.9:0"}`, keyspace.ReasonBadAddr},
		{"empty bare", "x", ``, keyspace.ReasonBadAddr},
		{"addr mismatch", "10.0.0.9:80", `{"addr":"10.0.0.8:80"}`, keyspace.ReasonAddrMismatch},
		{"zone wrong type", "10.0.0.9:80", `{"addr":"10.0.0.9:80","zone":1}`, keyspace.ReasonWrongType},
		{"metadata wrong type", "10.0.0.9:80", `{"addr":"10.0.0.9:80","metadata":{"a":1}}`, keyspace.ReasonWrongType},
		{"manager delete op", "10.0.0.9:80", `{"Op":1,"Addr":"10.0.0.9:80"}`, keyspace.ReasonBadOp},
		{"oversized", "10.0.0.9:80", `{"addr":"10.0.0.9:80","zone":"` + strings.Repeat("z", keyspace.MaxValueSize) + `"}`, keyspace.ReasonOversized},
		{"duplicate addr", "dup", `{"addr":"10.0.0.1:80"}`, keyspace.ReasonDuplicate},
	} {
		e := e
		t.Run(tc.name, func(t *testing.T) {
			key := "echo/" + tc.id
			if tc.reason != keyspace.ReasonDuplicate {
				_, err := keyspace.DecodeValue(key, tc.id, []byte(tc.value))
				ve, ok := err.(*keyspace.ValueError)
				if !ok || ve.Reason != tc.reason || ve.Key != key {
					t.Fatalf("DecodeValue = %v, want reason %s", err, tc.reason)
				}
			}
			e.Put(t, key, tc.value)
			e.Put(t, "echo/10.0.0.1:80", `{"addr":"10.0.0.1:80","weight":2}`)
			t.Cleanup(func() { e.Del(t, key) })
			var rejected []string
			cc, _ := etcdtest.Build(t, e.Cli, "echo", etcdlbresolver.WithHooksForTest(func(reason string) {
				rejected = append(rejected, reason)
			}))
			cc.WaitEndpoints(t, "10.0.0.1:80/2/")
			if tc.reason != keyspace.ReasonDuplicate && (len(rejected) != 1 || rejected[0] != string(tc.reason)) {
				t.Errorf("rejected %v, want [%s]", rejected, tc.reason)
			}
		})
	}
}

// TestResolverCloseStopsGoroutines builds and closes many resolvers.
func TestResolverCloseStopsGoroutines(t *testing.T) {
	e := etcdtest.NewEnv(t)
	e.Put(t, "echo/10.0.0.1:80", `{"addr":"10.0.0.1:80"}`)
	warm, r := etcdtest.Build(t, e.Cli, "echo")
	warm.WaitEndpoints(t, "10.0.0.1:80/1/")
	r.Close()
	before := stableGoroutines()
	for range 20 {
		b := etcdlbresolver.NewBuilder(e.Cli, etcdlbresolver.WithLogger(nil))
		cc := etcdtest.NewCC()
		r, err := b.Build(resolver.Target{URL: *etcdtest.MustURL("etcd:///echo")}, cc, resolver.BuildOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cc.WaitEndpoints(t, "10.0.0.1:80/1/")
		r.ResolveNow(resolver.ResolveNowOptions{})
		r.Close()
	}
	deadline := time.Now().Add(etcdtest.WaitTimeout)
	for {
		after := stableGoroutines()
		if after <= before {
			break
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines before, %d after closing:\n%s", before, after, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond) // polling a count, bounded above
	}
}

func stableGoroutines() int {
	runtime.GC()
	return runtime.NumGoroutine()
}

// TestResolveNowRelists shows that ResolveNow re-reads etcd (rate-limited):
// a change the watch cannot see, because the watch is on a revision, still
// arrives; here we count lists through the Synced hook.
func TestResolveNowRateLimited(t *testing.T) {
	e := etcdtest.NewEnv(t)
	e.Put(t, "echo/10.0.0.1:80", `{"addr":"10.0.0.1:80"}`)
	synced := make(chan struct{}, 100)
	cc, r := etcdtest.Build(t, e.Cli, "echo", etcdlbresolver.WithResolveNowInterval(200*time.Millisecond),
		etcdlbresolver.WithSyncedHookForTest(func() { synced <- struct{}{} }))
	cc.WaitEndpoints(t, "10.0.0.1:80/1/")
	<-synced
	start := time.Now()
	for range 50 {
		r.ResolveNow(resolver.ResolveNowOptions{})
	}
	select {
	case <-synced:
	case <-time.After(etcdtest.WaitTimeout):
		t.Fatal("ResolveNow did not re-list")
	}
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Errorf("re-listed after %v, want rate-limited to 200ms", d)
	}
	select {
	case <-synced:
		t.Errorf("50 ResolveNow calls made more than one list")
	case <-time.After(400 * time.Millisecond):
	}
}

var _ = clientv3.WithPrefix

// TestNilMetricsIsOff: WithMetrics(nil) means no metrics, not a panic in
// the resolver's goroutine.
func TestNilMetricsIsOff(t *testing.T) {
	e := etcdtest.NewEnv(t)
	e.Put(t, "echo/10.0.0.1:80", `{"addr":"10.0.0.1:80"}`)
	cc, _ := etcdtest.Build(t, e.Cli, "echo", etcdlbresolver.WithMetrics(nil))
	cc.WaitEndpoints(t, "10.0.0.1:80/1/")
	e.Put(t, "echo/10.0.0.2:80", `{"addr":"10.0.0.2:80","weight":"x"}`) // rejected: reported to no one
	e.Put(t, "echo/10.0.0.3:80", `{"addr":"10.0.0.3:80"}`)
	cc.WaitEndpoints(t, "10.0.0.1:80/1/ 10.0.0.3:80/1/")
}
