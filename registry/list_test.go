package registry_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcdlb/etcdlb/internal/etcdtest"
	"github.com/etcdlb/etcdlb/registry"
)

// putLeased puts n endpoints of service, each under a lease of its own with
// ttl, as n registrations do.
func putLeased(t testing.TB, e *etcdtest.Env, service string, n int, ttl int64) {
	t.Helper()
	for i := range n {
		g, err := e.Cli.Grant(e.Ctx, ttl)
		if err != nil {
			t.Fatal(err)
		}
		addr := fmt.Sprintf("10.0.%d.%d:80", i/250, i%250+1)
		e.Put(t, service+"/"+addr, fmt.Sprintf(`{"addr":%q}`, addr), clientv3.WithLease(g.ID))
	}
}

// TestListLeaseTTLs: List gives every leased key its lease's time left,
// -1 for a key without a lease, and asks once for a lease two keys share.
func TestListLeaseTTLs(t *testing.T) {
	e := etcdtest.NewEnv(t)
	defer registry.SetTTLConcurrencyForTest(4)()
	putLeased(t, e, "echo", 20, 60)
	e.Put(t, "echo/10.1.0.1:80", `{"addr":"10.1.0.1:80"}`)
	g, err := e.Cli.Grant(e.Ctx, 30)
	if err != nil {
		t.Fatal(err)
	}
	e.Put(t, "echo/10.1.0.2:80", `{"addr":"10.1.0.2:80"}`, clientv3.WithLease(g.ID))
	e.Put(t, "echo/10.1.0.3:80", `{"addr":"10.1.0.3:80"}`, clientv3.WithLease(g.ID))
	ins, err := registry.List(e.Ctx, e.Cli, "echo")
	if err != nil {
		t.Fatal(err)
	}
	if len(ins) != 23 {
		t.Fatalf("List: %d instances, want 23", len(ins))
	}
	for _, in := range ins {
		switch {
		case in.ID == "10.1.0.1:80":
			if in.Lease != 0 || in.TTL != -1 {
				t.Errorf("%s: lease %x TTL %v, want none and -1", in.ID, int64(in.Lease), in.TTL)
			}
		case in.Lease == g.ID:
			if in.TTL <= 0 || in.TTL > 30*time.Second {
				t.Errorf("%s: TTL %v, want in (0, 30s]", in.ID, in.TTL)
			}
		case in.TTL <= 30*time.Second || in.TTL > 60*time.Second:
			t.Errorf("%s: TTL %v, want in (30s, 60s]", in.ID, in.TTL)
		}
	}
}

// BenchmarkList1000 lists a service of 1,000 registrations, each with its
// lease: TimeToLive requests one at a time (as List made them) and 32 in
// flight.
func BenchmarkList1000(b *testing.B) {
	e := etcdtest.NewEnv(b)
	putLeased(b, e, "echo", 1000, 600)
	for _, n := range []int{1, 32} {
		b.Run(fmt.Sprintf("inflight=%d", n), func(b *testing.B) {
			defer registry.SetTTLConcurrencyForTest(n)()
			for b.Loop() {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				ins, err := registry.List(ctx, e.Cli, "echo")
				cancel()
				if err != nil || len(ins) != 1000 {
					b.Fatalf("List: %d, %v", len(ins), err)
				}
			}
		})
	}
}
