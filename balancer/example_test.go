package balancer_test

import (
	"context"
	"fmt"
	"log"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	testpb "google.golang.org/grpc/interop/grpc_testing"

	etcdlb "github.com/etcdlb/etcdlb/balancer"
	"github.com/etcdlb/etcdlb/endpoint"
	"github.com/etcdlb/etcdlb/internal/testserver"
	"github.com/etcdlb/etcdlb/resolver/static"
)

// exampleDial dials three backends with the given loadBalancingConfig and
// makes a call. The examples below differ only in the config.
func exampleDial(serviceConfig string) {
	var eps []string
	for range 3 {
		s, err := testserver.Start()
		if err != nil {
			log.Fatal(err)
		}
		defer s.Stop()
		eps = append(eps, s.Addr)
	}
	r := static.New("example",
		endpoint.New(eps[0], endpoint.Attrs{Weight: 1, Zone: "eu-1a"}),
		endpoint.New(eps[1], endpoint.Attrs{Weight: 3, Zone: "eu-1a"}),
		endpoint.New(eps[2], endpoint.Attrs{Weight: 1, Zone: "eu-1b"}))

	conn, err := grpc.NewClient("example:///echo",
		grpc.WithResolvers(r),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(serviceConfig))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	_, err = testgrpc.NewTestServiceClient(conn).EmptyCall(context.Background(), &testpb.Empty{}, grpc.WaitForReady(true))
	fmt.Println("call error:", err)
}

// Dial with etcdlb_round_robin: every ready endpoint of the local zone in
// turn.
func Example_roundRobin() {
	exampleDial(`{"loadBalancingConfig":[{"` + etcdlb.RoundRobinName + `":{"localZone":"eu-1a"}}]}`)
	// Output: call error: <nil>
}

// Dial with etcdlb_weighted: traffic in proportion to the endpoints'
// weights, in the local zone while it has at least two ready endpoints.
func Example_weighted() {
	exampleDial(`{"loadBalancingConfig":[{"` + etcdlb.WeightedName + `":{"localZone":"eu-1a","localZoneMinReady":2}}]}`)
	// Output: call error: <nil>
}

// Dial with etcdlb_least_inflight: each call to the less busy of two
// sampled endpoints, in-flight calls divided by weight.
func Example_leastInflight() {
	exampleDial(`{"loadBalancingConfig":[{"` + etcdlb.LeastInflightName + `":{"choiceCount":2}}]}`)
	// Output: call error: <nil>
}
