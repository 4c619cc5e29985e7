package balancer_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/balancer/pickfirst"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/resolver"

	"github.com/etcdlb/etcdlb/internal/fakecc"
)

// TestPickFirstReadyPickerIsFixed guards the assumption behind
// picker.Endpoint.Fixed, which the policies set on their pick_first
// children: while READY, pick_first's picker returns the same SubConn,
// with no Done, no metadata and no error, whatever the PickInfo, and
// leaving READY pushes a new picker (on which the policies rebuild
// theirs). A grpc-go upgrade that changes either fails here.
func TestPickFirstReadyPickerIsFixed(t *testing.T) {
	cc := fakecc.New()
	cc.AutoReady = true
	defer cc.Close()
	pf := balancer.Get(pickfirst.Name).Build(cc, balancer.BuildOptions{})
	defer pf.Close()
	if err := pf.UpdateClientConnState(balancer.ClientConnState{
		ResolverState: resolver.State{Endpoints: []resolver.Endpoint{ep("a:1", 1, "")}},
	}); err != nil {
		t.Fatal(err)
	}
	s, updates := waitForState(t, cc, 0, connectivity.Ready)
	first, err := s.Picker.Pick(balancer.PickInfo{})
	if err != nil || first.SubConn == nil {
		t.Fatalf("READY pick_first picked %v, %v", first.SubConn, err)
	}
	ctx := metadata.NewOutgoingContext(context.Background(), metadata.Pairs("k", "v"))
	for _, info := range []balancer.PickInfo{
		{},
		{FullMethodName: "/grpc.testing.TestService/EmptyCall", Ctx: context.Background()},
		{FullMethodName: "/other.Service/Method", Ctx: ctx},
	} {
		for range 3 {
			r, err := s.Picker.Pick(info)
			if err != nil || r.SubConn != first.SubConn || r.Done != nil || r.Metadata != nil {
				t.Fatalf("pick with %+v: SubConn %v (want %v), Done set %v, metadata %v, err %v",
					info, r.SubConn, first.SubConn, r.Done != nil, r.Metadata, err)
			}
		}
	}

	cc.SubConns()[0].SetState(connectivity.Idle, nil)
	waitForState(t, cc, updates, connectivity.Idle)
}

// waitForState waits until the policy on cc has pushed more than after
// states and the last is want; it returns that state and the count.
func waitForState(t *testing.T, cc *fakecc.ClientConn, after int, want connectivity.State) (balancer.State, int) {
	t.Helper()
	deadline := time.After(waitTimeout)
	for {
		s, n, changed := cc.State()
		if n > after && s.ConnectivityState == want {
			return s, n
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("timed out waiting for a %v picker; last state %v after %d updates", want, s.ConnectivityState, n)
		}
	}
}
