package resolver_test

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	testgrpc "google.golang.org/grpc/interop/grpc_testing"

	etcdlb "github.com/etcdlb/etcdlb/balancer"
	"github.com/etcdlb/etcdlb/internal/etcdtest"
	"github.com/etcdlb/etcdlb/internal/testserver"
	"github.com/etcdlb/etcdlb/registry"
)

var policies = etcdlb.Names()

// registerZones registers a backend per zone given, weight 1.
func registerZones(t *testing.T, e *etcdtest.Env, service string, zones ...string) []*testserver.Server {
	t.Helper()
	bs := make([]*testserver.Server, len(zones))
	for i, z := range zones {
		bs[i] = startBackend(t)
		etcdtest.Register(t, e.Cli, registry.Registration{Service: service, Addr: bs[i].Addr, Weight: 1, Zone: z})
	}
	return bs
}

// TestFreshClientsStayInLocalZone: every call of a fresh client goes to its
// own zone, though the other zone's three backends may connect before the
// local one (issue 12: 13-37 of the first 50 calls went to zone a).
func TestFreshClientsStayInLocalZone(t *testing.T) {
	e := etcdtest.NewEnv(t)
	bs := registerZones(t, e, "echo", "a", "a", "a", "b")
	for _, policy := range policies {
		t.Run(policy, func(t *testing.T) {
			for i := range 10 {
				c := dialPolicy(t, e.Cli, "echo", policy, `{"localZone":"b"}`)
				if got := callBatch(t, c, 50, bs); got[3] != 50 {
					t.Errorf("fresh client %d: its first 50 calls went %v to zones a,a,a,b; want all to b", i, got)
				}
			}
		})
	}
}

// silentListener accepts TCP connections and never answers, so a gRPC
// connection to it stays CONNECTING until grpc's connect timeout (20 s).
func silentListener(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		lis.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return lis.Addr().String()
}

// TestSilentLocalEndpointSpillsAfterTheWait: a local endpoint that accepts
// connections and never answers holds the first calls for localZoneWait,
// not for grpc's 20 s connect timeout; then they go to the other zone.
func TestSilentLocalEndpointSpillsAfterTheWait(t *testing.T) {
	e := etcdtest.NewEnv(t)
	bs := registerZones(t, e, "echo", "a", "a")
	etcdtest.Register(t, e.Cli, registry.Registration{Service: "echo", Addr: silentListener(t), Weight: 1, Zone: "b"})
	for _, policy := range policies {
		t.Run(policy, func(t *testing.T) {
			c := dialPolicy(t, e.Cli, "echo", policy, `{"localZone":"b","localZoneWait":"0.2s"}`)
			start := time.Now()
			// Fail-fast, with a deadline far below grpc's connect timeout.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if _, err := c.EmptyCall(ctx, &testgrpc.Empty{}); err != nil {
				t.Fatalf("first call, local endpoint silent: %v", err)
			}
			t.Logf("first call took %v", time.Since(start))
			if got := callBatch(t, c, 50, bs); got[0]+got[1] != 50 || got[0] == 0 || got[1] == 0 {
				t.Errorf("calls went %v to zone a's backends; want all 50 there, on both", got)
			}
		})
	}
}
