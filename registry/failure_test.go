package registry_test

import (
	"slices"
	"testing"
	"time"

	"github.com/etcdlb/etcdlb/internal/etcdtest"
	"github.com/etcdlb/etcdlb/registry"
)

// TestRegistrationPartitionedPastTTL cuts a server off from etcd for longer
// than its TTL: its key expires, and it comes back when the path does.
func TestRegistrationPartitionedPastTTL(t *testing.T) {
	e := etcdtest.NewEnv(t)
	p := etcdtest.StartProxy(t, e.Etcd.Endpoint(0))
	states := make(chan string, 100)
	reg := etcdtest.Register(t, etcdtest.ProxiedClient(t, p), registry.Registration{Service: "echo", Addr: "10.0.0.1:80"},
		registry.WithTTL(time.Second), registry.WithRequestTimeout(500*time.Millisecond),
		registry.WithStateHookForTest(func(s string) { states <- s }))
	cc, _ := etcdtest.Build(t, e.Cli, "echo")
	cc.WaitEndpoints(t, "10.0.0.1:80/1/")
	p.SetCut(true)
	cc.WaitEndpoints(t, "") // expired
	etcdtest.WaitFor(t, "registering", func() bool { return reg.State() == registry.Registering })
	p.SetCut(false)
	cc.WaitEndpoints(t, "10.0.0.1:80/1/")
	etcdtest.WaitFor(t, "registered", func() bool { return reg.State() == registry.Registered })
	var seen []string
	for len(states) > 0 {
		seen = append(seen, <-states)
	}
	if !slices.Contains(seen, "registering") || seen[len(seen)-1] != "registered" {
		t.Errorf("states %v", seen)
	}
}
