package registry_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcdlb/etcdlb/internal/etcdtest"
	"github.com/etcdlb/etcdlb/internal/poll"
	"github.com/etcdlb/etcdlb/internal/syncbuf"
	"github.com/etcdlb/etcdlb/registry"
)

// TestRegisterDrained registers a server already drained: weight 0, not the
// default weight 1 a zero Weight means.
func TestRegisterDrained(t *testing.T) {
	e := etcdtest.NewEnv(t)
	cc, _ := etcdtest.Build(t, e.Cli, "echo")
	r := etcdtest.Register(t, e.Cli, registry.Registration{Service: "echo", Addr: "127.0.0.1:1001", Drained: true, Zone: "a"})
	etcdtest.Register(t, e.Cli, registry.Registration{Service: "echo", Addr: "127.0.0.1:1002", Zone: "a"})
	cc.WaitEndpoints(t, "127.0.0.1:1001/0/a 127.0.0.1:1002/1/a")
	if err := r.SetWeight(e.Ctx, 4); err != nil {
		t.Fatal(err)
	}
	cc.WaitEndpoints(t, "127.0.0.1:1001/4/a 127.0.0.1:1002/1/a")

	_, err := registry.Register(e.Ctx, e.Cli, registry.Registration{Service: "echo", Addr: "127.0.0.1:1003", Drained: true, Weight: 3})
	if err == nil || !strings.Contains(err.Error(), "Drained") {
		t.Fatalf("Register Drained with Weight 3: %v, want an error naming Drained", err)
	}
}

// TestRegisterRefusesHeldKey registers an address that another process's
// registration holds: refused, naming the key and the lease, and the first
// registration is untouched; with WithTakeover it replaces it, and the first
// comes back when the second ends.
func TestRegisterRefusesHeldKey(t *testing.T) {
	e := etcdtest.NewEnv(t)
	cc, _ := etcdtest.Build(t, e.Cli, "echo")
	first := etcdtest.Register(t, e.Cli, registry.Registration{Service: "echo", Addr: "127.0.0.1:1001", Weight: 3, Zone: "a"})
	cc.WaitEndpoints(t, "127.0.0.1:1001/3/a")

	other := e.Etcd.ClientT(t) // another process
	second := registry.Registration{Service: "echo", Addr: "127.0.0.1:1001", Weight: 7, Zone: "b"}
	_, err := registry.Register(e.Ctx, other, second, registry.WithLogger(etcdtest.Logger(t)))
	if !errors.Is(err, registry.ErrKeyHeld) {
		t.Fatalf("second Register of a held key: %v, want ErrKeyHeld", err)
	}
	for _, want := range []string{first.Key(), fmt.Sprintf("lease %x", int64(first.Lease())), "WithTakeover"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	t.Logf("refused: %v", err)
	resp, err := e.Cli.Get(e.Ctx, first.Key())
	if err != nil || len(resp.Kvs) != 1 || resp.Kvs[0].Lease != int64(first.Lease()) {
		t.Fatalf("the first registration's key after the refusal: %v, %v", resp, err)
	}

	taker := etcdtest.Register(t, other, second, registry.WithTakeover())
	cc.WaitEndpoints(t, "127.0.0.1:1001/7/b")
	if err := taker.Close(); err != nil {
		t.Fatal(err)
	}
	cc.WaitEndpoints(t, "127.0.0.1:1001/3/a") // the first is back
	etcdtest.WaitFor(t, "the first registration registered again", func() bool { return first.State() == registry.Registered })
}

// TestRegisterClaimsItsOwnLease re-registers while the key is still on the
// Registrar's previous lease (its keepalive ended, the lease not yet): that
// is its own key, not another registration's.
func TestRegisterClaimsItsOwnLease(t *testing.T) {
	e := etcdtest.NewEnv(t)
	r := etcdtest.Register(t, e.Cli, registry.Registration{Service: "echo", Addr: "127.0.0.1:1001"})
	g, err := e.Cli.Grant(e.Ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if err := registry.ClaimForTest(e.Ctx, r, g.ID, r.Lease()); err != nil {
		t.Fatalf("claim of the key held by the Registrar's own lease: %v", err)
	}
	resp, err := e.Cli.Get(e.Ctx, r.Key())
	if err != nil || len(resp.Kvs) != 1 || resp.Kvs[0].Lease != int64(g.ID) {
		t.Fatalf("key after the claim: %v, %v; want it on lease %x", resp, err, int64(g.ID))
	}
	g2, err := e.Cli.Grant(e.Ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if err := registry.ClaimForTest(e.Ctx, r, g2.ID, r.Lease()); !errors.Is(err, registry.ErrKeyHeld) {
		t.Fatalf("claim of the key held by a lease not the Registrar's: %v, want ErrKeyHeld", err)
	}
}

// TestRegisterRefusesUndialable refuses addresses no client can dial.
func TestRegisterRefusesUndialable(t *testing.T) {
	e := etcdtest.NewEnv(t)
	for _, addr := range []string{"0.0.0.0:8080", "[::]:8080", ":8080", "127.0.0.1:0"} {
		_, err := registry.Register(e.Ctx, e.Cli, registry.Registration{Service: "echo", Addr: addr},
			registry.WithLogger(nil))
		if err == nil || !strings.Contains(err.Error(), addr) {
			t.Errorf("Register %q: %v, want an error naming it", addr, err)
		} else {
			t.Logf("%s: %v", addr, err)
		}
	}
	resp, err := e.Cli.Get(e.Ctx, "echo/", clientv3.WithPrefix())
	if err != nil || len(resp.Kvs) != 0 {
		t.Fatalf("keys under echo/: %v, %v; want none", resp, err)
	}
}

// TestRegisterEtcdDownNamesCause stops etcd: Register fails with its
// context's error and the reason etcd did not answer.
func TestRegisterEtcdDownNamesCause(t *testing.T) {
	e := etcdtest.NewEnv(t)
	e.Etcd.Stop(0)
	for _, reqTimeout := range []time.Duration{200 * time.Millisecond, 5 * time.Second} {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		_, err := registry.Register(ctx, e.Cli, registry.Registration{Service: "echo", Addr: "127.0.0.1:1001"},
			registry.WithLogger(nil), registry.WithRequestTimeout(reqTimeout))
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("request timeout %v: %v, want context.DeadlineExceeded", reqTimeout, err)
		}
		if err == nil || !strings.Contains(err.Error(), "connection refused") || !strings.Contains(err.Error(), e.Cli.Endpoints()[0]) {
			t.Errorf("request timeout %v: %v, want the endpoint and connection refused", reqTimeout, err)
		} else {
			t.Logf("request timeout %v: %v", reqTimeout, err)
		}
	}
}

// TestRegisterLogsLeaseInHex logs lease IDs as etcdctl prints them.
func TestRegisterLogsLeaseInHex(t *testing.T) {
	e := etcdtest.NewEnv(t)
	var buf syncbuf.Buffer
	r := etcdtest.Register(t, e.Cli, registry.Registration{Service: "echo", Addr: "127.0.0.1:1001"},
		registry.WithLogger(slog.New(slog.NewTextHandler(&buf, nil))))
	lease := r.Lease()
	if _, err := e.Cli.Revoke(e.Ctx, lease); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("lease=%x ", int64(lease))
	if !poll.Until(etcdtest.WaitTimeout, func() bool { return strings.Contains(buf.String(), want) }) {
		t.Fatalf("log does not have %q:\n%s", want, buf.String())
	}
}
