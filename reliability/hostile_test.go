package reliability_test

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcdlb/etcdlb/internal/embedetcd"
	"github.com/etcdlb/etcdlb/internal/heap"
	"github.com/etcdlb/etcdlb/keyspace"
	"github.com/etcdlb/etcdlb/metrics"
	etcdlbresolver "github.com/etcdlb/etcdlb/resolver"
)

const (
	// hostileKeys random-byte values of up to 16 KiB (the value limit, so
	// they are parsed) under the service's prefix.
	hostileKeys = 2000
	// hostileNames keys whose names are random bytes.
	hostileNames = 1000
	// hugeValues values of hugeSize each, above the value limit; etcd takes
	// at most 1.5 MiB a request.
	hugeValues = 6
	hugeSize   = 1400 << 10
	// retainedPerKey bounds what a resolver may keep of one rejected key:
	// its name, its entry and the reason it was rejected, never its value.
	retainedPerKey = 1 << 10
	// hostileHeapSlack: what the embedded etcd in this process keeps of the
	// second round of writes (its raft log), and grpc's buffers under load.
	hostileHeapSlack = 12 << 20
)

// TestHostileRegistryData fills a service's prefix with random bytes,
// enormous values and thousands of bogus keys, before its clients start and
// again while they serve: the clients keep serving the valid endpoints with
// no failed call, report every bad key (log and metric), and keep no more
// than retainedPerKey of memory per bad key.
func TestHostileRegistryData(t *testing.T) {
	e := newEnv(t, embedetcd.Options{})
	const service = "hostile"
	_, addrs := e.startBackends(t, service, 5*time.Second, 1, 2, 3)
	rng := rand.New(rand.NewPCG(8, 8))
	prefix := keyspace.ServicePrefix("", service)

	// Round one, before the clients start.
	var ops []clientv3.Op
	for i := range hostileKeys {
		ops = append(ops, clientv3.OpPut(fmt.Sprintf("%sbogus-%05d", prefix, i), randomBytes(rng, rng.IntN(16<<10))))
	}
	named := 0
	for range hostileNames {
		name := randomBytes(rng, 1+rng.IntN(64))
		if !strings.Contains(name, "/") {
			named++ // a name with a slash belongs to another service
		}
		ops = append(ops, clientv3.OpPut(prefix+name, randomBytes(rng, rng.IntN(256))))
	}
	putAll(t, e, ops)
	for i := range hugeValues {
		huge := fmt.Sprintf(`{"addr":"127.0.0.1:1","metadata":{"k":%q}}`, strings.Repeat("x", hugeSize))
		putAll(t, e, []clientv3.Op{clientv3.OpPut(fmt.Sprintf("%shuge-%d", prefix, i), huge)})
	}
	bad := hostileKeys + named + hugeValues
	h0 := heap.Live()

	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	var logged atomic.Int64
	cli := e.newClient(t)
	var cs []*client
	for _, p := range clientPolicies {
		cs = append(cs, dial(t, cli, service, p, "", etcdlbresolver.WithMetrics(m), etcdlbresolver.WithLogger(testLogger(t, &logged))))
	}
	waitAddrs(t, cs, addrs...)
	ls := startLoads(t, cs, 3)
	waitAllMore(t, ls, 300)

	// Round two, while they serve: a quarter of the bogus keys and one huge
	// value rewritten, then a valid key written last, which the clients see
	// after everything before it.
	ops = nil
	for i := range hostileKeys / 4 {
		ops = append(ops, clientv3.OpPut(fmt.Sprintf("%sbogus-%05d", prefix, i), randomBytes(rng, rng.IntN(512))))
	}
	putAll(t, e, ops)
	huge := fmt.Sprintf(`{"addr":"127.0.0.1:1","metadata":{"k":%q}}`, strings.Repeat("y", hugeSize))
	putAll(t, e, []clientv3.Op{clientv3.OpPut(prefix+"huge-0", huge)})
	late := e.startBackend(t, service, 1, 5*time.Second)
	waitAddrs(t, cs, append(addrs, late.Addr)...)
	waitAllMore(t, ls, 300)
	h1 := heap.Live()
	for _, l := range ls {
		l.stop()
	}

	rejected := counterSum(t, reg, "etcdlb_resolver_rejected_values_total")
	bound := uint64(len(cs)*bad*retainedPerKey) + hostileHeapSlack
	extra := fmt.Sprintf("bad_keys=%d huge_values=%dx%dKiB rejected_metric=%.0f logged=%d heap=%.1fMiB->%.1fMiB bound=+%.1fMiB",
		bad, hugeValues, hugeSize>>10, rejected, logged.Load(), mib(h0), mib(h1), mib(bound))
	for _, l := range ls {
		l.logFailures(t)
		report(t, figures{scenario: "hostile_registry", policy: l.c.policy, calls: l.calls.Load(), failed: l.failed.Load(), extra: extra})
		if n := l.failed.Load(); n != 0 {
			t.Errorf("%s: %d of %d calls failed with garbage in the registry", l.c.policy, n, l.calls.Load())
		}
	}
	checkNoWorse(t, ls, time.Time{}, false)
	// Every client rejects every bad key once when it lists.
	if want := float64(len(cs) * bad); rejected < want {
		t.Errorf("rejected-values metric %.0f, want at least %.0f (%d clients × %d bad keys)", rejected, want, len(cs), bad)
	}
	if logged.Load() < int64(len(cs)*bad) {
		t.Errorf("%d rejected keys logged, want at least %d", logged.Load(), len(cs)*bad)
	}
	if h1 > h0+bound {
		t.Errorf("heap %.1f MiB with the clients serving, %.1f MiB before them: more than %.1f MiB for %d bad keys in %d clients",
			mib(h1), mib(h0), mib(bound), bad, len(cs))
	}
}

// randomBytes returns n random bytes, as a string.
func randomBytes(rng *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return string(b)
}

// putAll writes ops in transactions small enough for etcd's request limits.
func putAll(t *testing.T, e *env, ops []clientv3.Op) {
	t.Helper()
	for len(ops) > 0 {
		n := min(len(ops), 50)
		if _, err := e.cli.Txn(e.ctx).Then(ops[:n]...).Commit(); err != nil {
			t.Fatalf("write hostile data: %v", err)
		}
		ops = ops[n:]
	}
}

// counterSum sums every series of the counter family name in reg.
func counterSum(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}
