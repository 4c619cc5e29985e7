package registry_test

import (
	"context"
	"testing"
	"time"

	"github.com/etcdlb/etcdlb/internal/etcdtest"
	"github.com/etcdlb/etcdlb/internal/leakcheck"
	"github.com/etcdlb/etcdlb/registry"
)

func TestRegistrarCloseLeavesNoGoroutine(t *testing.T) {
	for _, end := range []string{"Close", "Deregister"} {
		t.Run(end, func(t *testing.T) {
			e := etcdtest.NewEnv(t)
			e.Warm(t)
			s := leakcheck.Take()
			ctx, cancel := context.WithTimeout(context.Background(), etcdtest.WaitTimeout)
			defer cancel()
			reg, err := registry.Register(ctx, e.Cli, registry.Registration{Service: "echo", Addr: "127.0.0.1:1001"},
				registry.WithLogger(etcdtest.Logger(t)), registry.WithTTL(2*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			// An in-place weight edit, which the registration's watch sees.
			if err := reg.SetWeight(ctx, 3); err != nil {
				t.Fatal(err)
			}
			if end == "Close" {
				err = reg.Close()
			} else {
				err = reg.Deregister(ctx)
			}
			if err != nil {
				t.Fatal(err)
			}
			s.Check(t)
		})
	}
}

// TestRegistrarOfClosedClientLeavesNoGoroutine: a registration whose etcd
// client is closed under it stops by itself.
func TestRegistrarOfClosedClientLeavesNoGoroutine(t *testing.T) {
	e := etcdtest.NewEnv(t)
	e.Warm(t) // and so the server
	s := leakcheck.Take()
	cli, err := e.Etcd.Client()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), etcdtest.WaitTimeout)
	defer cancel()
	reg, err := registry.Register(ctx, cli, registry.Registration{Service: "echo", Addr: "127.0.0.1:1001"},
		registry.WithLogger(etcdtest.Logger(t)))
	if err != nil {
		t.Fatal(err)
	}
	cli.Close()
	s.Check(t)
	if st := reg.State(); st != registry.Closed {
		t.Errorf("state after the client closed: %v", st)
	}
}
