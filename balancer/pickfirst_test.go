package balancer_test

import (
	"context"
	"testing"

	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/balancer/pickfirst"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/metadata"
)

// TestPickFirstReadyPickerIsFixed guards the assumption behind
// picker.Endpoint.Fixed, which the policies set on their pick_first
// children: while READY, pick_first's picker returns the same SubConn,
// with no Done, no metadata and no error, whatever the PickInfo, and
// leaving READY pushes a new picker (on which the policies rebuild
// theirs). A grpc-go upgrade that changes either fails here.
func TestPickFirstReadyPickerIsFixed(t *testing.T) {
	h := newHarness(t, pickfirst.Name, `{}`, true)
	if err := h.update(ep("a:1", 1, "")); err != nil {
		t.Fatal(err)
	}
	s := h.waitFor("a READY picker", func(s balancer.State) bool { return s.ConnectivityState == connectivity.Ready })
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

	// The last state was READY: an IDLE one is a new push.
	h.cc.SubConns()[0].SetState(connectivity.Idle, nil)
	h.waitFor("an IDLE picker after READY", func(s balancer.State) bool { return s.ConnectivityState == connectivity.Idle })
}
