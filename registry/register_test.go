package registry_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/etcdlb/etcdlb/internal/etcdtest"
	"github.com/etcdlb/etcdlb/metrics"
	"github.com/etcdlb/etcdlb/registry"
)

func TestRegisterUpdateDeregister(t *testing.T) {
	e := etcdtest.NewEnv(t)
	cc, _ := etcdtest.Build(t, e.Cli, "echo")
	a := etcdtest.Register(t, e.Cli, registry.Registration{Service: "echo", Addr: "127.0.0.1:1001", Weight: 2, Zone: "a"})
	b := etcdtest.Register(t, e.Cli, registry.Registration{Service: "echo", Addr: "127.0.0.1:1002", Zone: "b",
		Metadata: map[string]string{"v": "1"}})
	cc.WaitEndpoints(t, "127.0.0.1:1001/2/a 127.0.0.1:1002/1/b/v=1")
	if a.State() != registry.Registered || a.Key() != "echo/127.0.0.1:1001" {
		t.Fatalf("state %v key %q", a.State(), a.Key())
	}
	if err := a.SetWeight(e.Ctx, 5); err != nil {
		t.Fatal(err)
	}
	cc.WaitEndpoints(t, "127.0.0.1:1001/5/a 127.0.0.1:1002/1/b/v=1")
	if err := b.SetZone(e.Ctx, "c"); err != nil {
		t.Fatal(err)
	}
	if err := a.Drain(e.Ctx); err != nil {
		t.Fatal(err)
	}
	cc.WaitEndpoints(t, "127.0.0.1:1001/0/a 127.0.0.1:1002/1/c/v=1")
	if err := a.Deregister(e.Ctx); err != nil {
		t.Fatal(err)
	}
	cc.WaitEndpoints(t, "127.0.0.1:1002/1/c/v=1")
	if a.State() != registry.Closed {
		t.Errorf("state after Deregister: %v", a.State())
	}
	if err := a.SetWeight(e.Ctx, 1); err == nil {
		t.Errorf("SetWeight after Deregister succeeded")
	}
}

func TestRegisterLeaseRevokedComesBack(t *testing.T) { leaseRevokedComesBack(t, etcdtest.NewEnv(t)) }

func leaseRevokedComesBack(t *testing.T, e *etcdtest.Env) {
	cc, _ := etcdtest.Build(t, e.Cli, "echo")
	r := etcdtest.Register(t, e.Cli, registry.Registration{Service: "echo", Addr: "127.0.0.1:1001"},
		registry.WithTTL(time.Second))
	cc.WaitEndpoints(t, "127.0.0.1:1001/1/")
	old := r.Lease()
	start := time.Now()
	if _, err := e.Cli.Revoke(e.Ctx, old); err != nil {
		t.Fatal(err)
	}
	cc.WaitEndpoints(t, "")
	cc.WaitEndpoints(t, "127.0.0.1:1001/1/")
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("back after %v, want within a few TTLs of 1s", d)
	}
	if r.Lease() == old {
		t.Errorf("still on the revoked lease")
	}
}

// TestRegisterCrashKeyExpires stops a server without deregistering: its
// client goes away, and the key with it within the TTL.
func TestRegisterCrashKeyExpires(t *testing.T) {
	e := etcdtest.NewEnv(t)
	crashing, err := e.Etcd.Client()
	if err != nil {
		t.Fatal(err)
	}
	defer crashing.Close()
	ctx, cancel := context.WithTimeout(e.Ctx, etcdtest.WaitTimeout)
	defer cancel()
	r, err := registry.Register(ctx, crashing, registry.Registration{Service: "echo", Addr: "127.0.0.1:1001"},
		registry.WithTTL(2*time.Second), registry.WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	cc, _ := etcdtest.Build(t, e.Cli, "echo")
	cc.WaitEndpoints(t, "127.0.0.1:1001/1/")
	crashing.Close() // keepalives stop; nothing deletes the key
	start := time.Now()
	cc.WaitEndpoints(t, "")
	if d := time.Since(start); d > 2*time.Second+time.Second {
		t.Errorf("key gone after %v, want within the 2s TTL", d)
	}
	if r.State() != registry.Closed {
		t.Errorf("state after client closed: %v", r.State())
	}
}

// TestOperatorWeightSurvives edits a registered key in place, as
// `etcdctl put --ignore-lease` does: the weight becomes an override that
// outlives lease loss, re-registration and a restart of the server, and
// wins over the server's own weight until cleared.
func TestOperatorWeightSurvives(t *testing.T) { operatorWeightSurvives(t, etcdtest.NewEnv(t)) }

func operatorWeightSurvives(t *testing.T, e *etcdtest.Env) {
	cc, _ := etcdtest.Build(t, e.Cli, "echo")
	reg := registry.Registration{Service: "echo", Addr: "127.0.0.1:1001", Weight: 3, Zone: "a"}
	r := etcdtest.Register(t, e.Cli, reg, registry.WithTTL(time.Second))
	cc.WaitEndpoints(t, "127.0.0.1:1001/3/a")

	e.PutIgnoreLease(t, r.Key(), `{"addr":"127.0.0.1:1001","weight":9,"zone":"a"}`)
	cc.WaitEndpoints(t, "127.0.0.1:1001/9/a")
	waitOverride(t, e, "echo", "127.0.0.1:1001", 9)

	// Lease lost: re-registered, the operator's weight still wins.
	if _, err := e.Cli.Revoke(e.Ctx, r.Lease()); err != nil {
		t.Fatal(err)
	}
	cc.WaitEndpoints(t, "")
	cc.WaitEndpoints(t, "127.0.0.1:1001/9/a")
	// The server's own weight changes: still the operator's.
	if err := r.SetWeight(e.Ctx, 4); err != nil {
		t.Fatal(err)
	}
	// Server restart.
	if err := r.Deregister(e.Ctx); err != nil {
		t.Fatal(err)
	}
	cc.WaitEndpoints(t, "")
	r = etcdtest.Register(t, e.Cli, reg)
	cc.WaitEndpoints(t, "127.0.0.1:1001/9/a")
	// A plain put (taking the key off the lease) is an edit too; the key goes
	// back on the lease so that it still dies with the server.
	e.Put(t, r.Key(), `{"addr":"127.0.0.1:1001","weight":6,"zone":"a"}`)
	waitOverride(t, e, "echo", "127.0.0.1:1001", 6)
	cc.WaitEndpoints(t, "127.0.0.1:1001/6/a")
	etcdtest.WaitFor(t, "key back on the lease", func() bool {
		resp, err := e.Cli.Get(e.Ctx, r.Key())
		return err == nil && len(resp.Kvs) == 1 && resp.Kvs[0].Lease == int64(r.Lease())
	})
	// Cleared: the server's own weight applies.
	if err := registry.ClearOverride(e.Ctx, e.Cli, "echo", "127.0.0.1:1001"); err != nil {
		t.Fatal(err)
	}
	cc.WaitEndpoints(t, "127.0.0.1:1001/3/a")

	ins, err := registry.List(e.Ctx, e.Cli, "echo")
	if err != nil || len(ins) != 1 || ins[0].Weight() != 3 || ins[0].HasOverride || ins[0].TTL < 0 || ins[0].Lease != r.Lease() {
		t.Fatalf("List = %+v, %v", ins, err)
	}
}

func TestRegisterGivesUpOnlyWithItsContext(t *testing.T) {
	e := etcdtest.NewEnv(t)
	e.Etcd.Stop(0)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err := registry.Register(ctx, e.Cli, registry.Registration{Service: "echo", Addr: "127.0.0.1:1001"},
		registry.WithLogger(nil), registry.WithRequestTimeout(200*time.Millisecond))
	if err == nil {
		t.Fatal("Register with etcd down succeeded")
	}
	t.Logf("Register: %v", err)
	etcdtest.WaitFor(t, "no Registrar goroutine left", func() bool { return !etcdtest.GoroutinesIn("(*Registrar)") })
}

func waitOverride(t testing.TB, e *etcdtest.Env, service, id string, want uint32) {
	t.Helper()
	etcdtest.WaitFor(t, "override", func() bool {
		w, ok, err := registry.GetOverride(e.Ctx, e.Cli, service, id)
		return err == nil && ok && w == want
	})
}

// TestNilMetricsIsOff: WithMetrics with a nil *metrics.Metrics, or a nil
// Observer, means no metrics, not a panic inside Register.
func TestNilMetricsIsOff(t *testing.T) {
	e := etcdtest.NewEnv(t)
	for i, obs := range []registry.Observer{(*metrics.Metrics)(nil), nil} {
		reg := etcdtest.Register(t, e.Cli, registry.Registration{Service: "echo", Addr: fmt.Sprintf("10.0.0.%d:80", i+1)},
			registry.WithMetrics(obs))
		if err := reg.SetWeight(e.Ctx, 3); err != nil {
			t.Fatal(err)
		}
		if err := reg.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
