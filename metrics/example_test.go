package metrics_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	testpb "google.golang.org/grpc/interop/grpc_testing"

	_ "github.com/etcdlb/etcdlb/balancer"
	"github.com/etcdlb/etcdlb/endpoint"
	"github.com/etcdlb/etcdlb/internal/testserver"
	"github.com/etcdlb/etcdlb/metrics"
	"github.com/etcdlb/etcdlb/resolver/static"
)

// Serve the metrics on /metrics with promhttp. Give m to the resolver —
// resolver.NewBuilder(cli, resolver.WithMetrics(m)) for etcd, or
// static.Resolver.WithMetrics — and the resolver, the registrations and the
// policies of every ClientConn it serves report to it.
func ExampleNew() {
	reg := prometheus.NewRegistry() // or prometheus.DefaultRegisterer
	m, err := metrics.New(reg)
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := httptest.NewServer(mux) // http.ListenAndServe(":9090", mux) in a real server
	defer srv.Close()

	backend, err := testserver.Start()
	if err != nil {
		log.Fatal(err)
	}
	defer backend.Stop()
	r := static.New("example", endpoint.New(backend.Addr, endpoint.Attrs{Weight: 1, Zone: "eu-1a"})).WithMetrics(m)
	conn, err := grpc.NewClient("example:///echo", grpc.WithResolvers(r),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"etcdlb_weighted":{}}]}`))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	if _, err := testgrpc.NewTestServiceClient(conn).EmptyCall(context.Background(), &testpb.Empty{}, grpc.WaitForReady(true)); err != nil {
		log.Fatal(err)
	}

	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "etcdlb_balancer_picks_total") {
			fmt.Println(strings.Replace(line, backend.Addr, "ADDR", 1))
		}
	}
	// Output: etcdlb_balancer_picks_total{endpoint="ADDR",policy="etcdlb_weighted",service="echo",zone="eu-1a"} 1
}
