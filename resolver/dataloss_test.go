package resolver_test

import (
	"testing"
	"time"

	"github.com/etcdlb/etcdlb/internal/etcdtest"
	"github.com/etcdlb/etcdlb/registry"
	etcdlbresolver "github.com/etcdlb/etcdlb/resolver"
)

// TestDataLossHoldsEndpoints restarts etcd empty: the resolver keeps serving
// the endpoints it lost until they re-register, and drops those that do not
// once the grace period is over.
func TestDataLossHoldsEndpoints(t *testing.T) {
	e := etcdtest.NewEnv(t)
	for i := range 20 { // the revision the resolver knows is above the emptied etcd's
		e.Put(t, "other/k", string(rune('a'+i)))
	}
	holding := etcdtest.NewLogSignal(t, "serving them until they re-register")
	cc, _ := etcdtest.Build(t, e.Cli, "echo",
		etcdlbresolver.WithRevisionCheckForTest(100*time.Millisecond),
		etcdlbresolver.WithDataLossGrace(3*time.Second),
		etcdlbresolver.WithLogger(holding.Logger))
	e.Put(t, "echo/127.0.0.1:1001", `{"addr":"127.0.0.1:1001"}`)
	e.Put(t, "echo/127.0.0.1:1002", `{"addr":"127.0.0.1:1002","weight":2}`)
	both := "127.0.0.1:1001/1/ 127.0.0.1:1002/2/"
	cc.WaitEndpoints(t, both)
	before := cc.NumStates()

	if err := e.Etcd.RestartEmpty(0); err != nil {
		t.Fatal(err)
	}
	holding.Wait(t)
	e.Put(t, "echo/127.0.0.1:1002", `{"addr":"127.0.0.1:1002","weight":3}`) // 1002 re-registers
	cc.WaitEndpoints(t, "127.0.0.1:1002/3/")                                // 1001 dropped after the grace

	states := cc.States()
	for _, s := range states[before : len(states)-1] {
		if d := etcdtest.Describe(s); d != both && d != "127.0.0.1:1001/1/ 127.0.0.1:1002/3/" {
			t.Errorf("while held, the resolver pushed %q; want 1001 kept beside 1002", d)
		}
	}
}

// TestRegisterEtcdLostItsData restarts etcd empty: registrations come back
// and the resolver, whose watch revision is now in the future, finds them.
func TestRegisterEtcdLostItsData(t *testing.T) {
	e := etcdtest.NewEnv(t)
	// The revision the resolver lists at is well above what the emptied etcd
	// reaches in this test, as in a real cluster; detection relies on it.
	for i := range 20 {
		e.Put(t, "other/k", string(rune('a'+i)))
	}
	cc, _ := etcdtest.Build(t, e.Cli, "echo", etcdlbresolver.WithRevisionCheckForTest(200*time.Millisecond))
	etcdtest.Register(t, e.Cli, registry.Registration{Service: "echo", Addr: "127.0.0.1:1001"}, registry.WithTTL(time.Second))
	cc.WaitEndpoints(t, "127.0.0.1:1001/1/")
	if err := e.Etcd.RestartEmpty(0); err != nil {
		t.Fatal(err)
	}
	e.Put(t, "echo/127.0.0.1:1002", `{"addr":"127.0.0.1:1002"}`)
	cc.WaitEndpoints(t, "127.0.0.1:1001/1/ 127.0.0.1:1002/1/")
}
