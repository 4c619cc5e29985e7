// Command client calls a service registered in etcd (by examples/server)
// through etcdlb's resolver and weighted policy, and prints every second
// how many calls each backend answered.
//
//	go run ./examples/client --etcd 127.0.0.1:2379 --zone eu-1a
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"

	"github.com/etcdlb/etcdlb/metrics"
	"github.com/etcdlb/etcdlb/resolver" // registers etcdlb's policies too
)

func main() {
	etcd := flag.String("etcd", "127.0.0.1:2379", "etcd endpoints, comma-separated")
	service := flag.String("service", "echo", "the service to call")
	zone := flag.String("zone", "", "this client's zone: its endpoints are preferred (localZone)")
	metricsAddr := flag.String("metrics", "", "serve Prometheus /metrics on this address, e.g. 127.0.0.1:9091")
	flag.Parse()
	if err := run(*etcd, *service, *zone, *metricsAddr); err != nil {
		log.Fatal(err)
	}
}

func run(etcd, service, zone, metricsAddr string) error {
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   strings.Split(etcd, ","),
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(), // etcdlb's errors name the etcd endpoints and the cause
	})
	if err != nil {
		return err
	}
	defer cli.Close()

	m, err := metrics.New(prometheus.DefaultRegisterer)
	if err != nil {
		return err
	}
	if metricsAddr != "" {
		http.Handle("/metrics", promhttp.Handler())
		go func() { log.Print(http.ListenAndServe(metricsAddr, nil)) }()
	}

	serviceConfig := fmt.Sprintf(`{"loadBalancingConfig":[{"etcdlb_weighted":{"localZone":%q}}]}`, zone)
	conn, err := grpc.NewClient("etcd:///"+service,
		grpc.WithResolvers(resolver.NewBuilder(cli, resolver.WithMetrics(m))),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(serviceConfig))
	if err != nil {
		return err
	}
	defer conn.Close()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	return callUntil(ctx, healthpb.NewHealthClient(conn))
}

// callUntil calls c until ctx ends, and prints every second how many calls
// each backend answered.
func callUntil(ctx context.Context, c healthpb.HealthClient) error {
	answered := map[string]int{}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		var p peer.Peer
		callCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := c.Check(callCtx, &healthpb.HealthCheckRequest{}, grpc.Peer(&p))
		cancel()
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			log.Printf("call failed: %v", err)
			time.Sleep(500 * time.Millisecond)
		default:
			answered[p.Addr.String()]++
		}
		select {
		case <-tick.C:
			log.Printf("calls answered in the last second, by backend: %v", answered)
			clear(answered)
		default:
		}
		time.Sleep(10 * time.Millisecond)
	}
}
