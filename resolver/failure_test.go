package resolver_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/resolver"

	"github.com/etcdlb/etcdlb/internal/embedetcd"
	"github.com/etcdlb/etcdlb/internal/etcdtest"
	"github.com/etcdlb/etcdlb/registry"
	etcdlbresolver "github.com/etcdlb/etcdlb/resolver"
)

// TestCompactedWhileDisconnected cuts one client off, changes the service
// and compacts past the client's revision: the client re-lists and ends up
// exactly in sync.
func TestCompactedWhileDisconnected(t *testing.T) {
	e := etcdtest.NewEnv(t)
	p := etcdtest.StartProxy(t, e.Etcd.Endpoint(0))
	compactions := make(chan struct{}, 10)
	cc, _ := etcdtest.Build(t, etcdtest.ProxiedClient(t, p), "echo", etcdlbresolver.WithCompactedHookForTest(func() { compactions <- struct{}{} }))
	for i := 1; i <= 4; i++ {
		e.Put(t, addrKey(i), addrValue(i, 1))
	}
	cc.WaitEndpoints(t, "10.0.0.1:80/1/ 10.0.0.2:80/1/ 10.0.0.3:80/1/ 10.0.0.4:80/1/")

	p.SetCut(true)
	e.Del(t, addrKey(2))                  // removed
	e.Put(t, addrKey(3), addrValue(3, 7)) // changed
	e.Put(t, addrKey(5), addrValue(5, 1)) // added
	e.Del(t, addrKey(4))
	e.Put(t, addrKey(4), addrValue(4, 2)) // removed and back
	resp, err := e.Cli.Get(e.Ctx, "any")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Cli.Compact(e.Ctx, resp.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	p.SetCut(false)
	cc.WaitEndpoints(t, "10.0.0.1:80/1/ 10.0.0.3:80/7/ 10.0.0.4:80/2/ 10.0.0.5:80/1/")
	select {
	case <-compactions:
	default:
		t.Errorf("in sync without seeing the compaction")
	}
}

// TestCutOffKeepsLastEndpoints: while the client cannot reach etcd it keeps
// its endpoints (no empty update), and what was written meanwhile arrives.
func TestCutOffKeepsLastEndpoints(t *testing.T) {
	e := etcdtest.NewEnv(t)
	p := etcdtest.StartProxy(t, e.Etcd.Endpoint(0))
	cc, _ := etcdtest.Build(t, etcdtest.ProxiedClient(t, p), "echo", etcdlbresolver.WithRequestTimeout(500*time.Millisecond))
	e.Put(t, addrKey(1), addrValue(1, 1))
	cc.WaitEndpoints(t, "10.0.0.1:80/1/")
	n := cc.NumStates()
	p.SetCut(true)
	e.Put(t, addrKey(2), addrValue(2, 1))
	time.Sleep(2 * time.Second) // let the cut-off client fail and retry a few times
	if got := cc.NumStates(); got != n {
		t.Fatalf("%d updates while cut off", got-n)
	}
	p.SetCut(false)
	cc.WaitEndpoints(t, "10.0.0.1:80/1/ 10.0.0.2:80/1/")
}

// TestBuildWithEtcdDown: Build returns at once; the first state comes when
// etcd does, and RPCs meanwhile learn why they wait.
func TestBuildWithEtcdDown(t *testing.T) {
	e := etcdtest.NewEnv(t)
	e.Put(t, addrKey(1), addrValue(1, 1))
	e.Etcd.Stop(0)
	start := time.Now()
	cc, _ := etcdtest.Build(t, e.Cli, "echo", etcdlbresolver.WithRequestTimeout(300*time.Millisecond))
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("Build took %v", d)
	}
	cc.WaitFor(t, "an error", func(last *resolver.State, errs []error) bool { return len(errs) > 0 })
	if cc.NumStates() != 0 {
		t.Fatal("a state pushed while etcd is down")
	}
	if err := e.Etcd.Restart(0); err != nil {
		t.Fatal(err)
	}
	cc.WaitEndpoints(t, "10.0.0.1:80/1/")
}

// TestClusterMemberStopped stops the member the clients talk to, in a
// three-member cluster: discovery and registration carry on.
func TestClusterMemberStopped(t *testing.T) {
	c := embedetcd.StartT(t, embedetcd.Options{Members: 3})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// Both clients know every member but start on member 0.
	cfg := c.ClientConfig()
	cfg.Endpoints = []string{c.Endpoint(0), c.Endpoint(1), c.Endpoint(2)}
	cli, err := clientv3.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	regCli, err := clientv3.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer regCli.Close()
	writer := c.ClientT(t)

	cc, _ := etcdtest.Build(t, cli, "echo")
	reg := etcdtest.Register(t, regCli, registry.Registration{Service: "echo", Addr: "10.0.0.1:80"},
		registry.WithTTL(2*time.Second))
	cc.WaitEndpoints(t, "10.0.0.1:80/1/")

	// The clients balance over all members, and their watch streams live on
	// one of them: stopping each in turn stops the one they use.
	lease := reg.Lease()
	for victim := range 3 {
		t.Logf("stopping member %d", victim)
		c.Stop(victim)
		if err := reg.SetWeight(ctx, uint32(victim+5)); err != nil {
			t.Fatal(err)
		}
		if _, err := writer.Put(ctx, addrKey(2), addrValue(2, victim+1)); err != nil {
			t.Fatal(err)
		}
		cc.WaitEndpoints(t, fmt.Sprintf("10.0.0.1:80/%d/ 10.0.0.2:80/%d/", victim+5, victim+1))
		if err := c.Restart(victim); err != nil {
			t.Fatal(err)
		}
	}
	// Several TTLs passed, and the registration never lost its lease.
	if reg.State() != registry.Registered || reg.Lease() != lease {
		t.Errorf("registration %v on lease %x, started on %x", reg.State(), reg.Lease(), lease)
	}
}

func addrKey(i int) string { return fmt.Sprintf("echo/10.0.0.%d:80", i) }

func addrValue(i, w int) string { return fmt.Sprintf(`{"addr":"10.0.0.%d:80","weight":%d}`, i, w) }
