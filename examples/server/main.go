// Command server is a gRPC server that registers itself in etcd with etcdlb
// and serves grpc's health service until Ctrl-C; examples/client calls it.
//
//	go run ./examples/server --etcd 127.0.0.1:2379 --weight 10 --zone eu-1a
package main

import (
	"context"
	"flag"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/etcdlb/etcdlb/metrics"
	"github.com/etcdlb/etcdlb/registry"
)

func main() {
	etcd := flag.String("etcd", "127.0.0.1:2379", "etcd endpoints, comma-separated")
	listen := flag.String("listen", "127.0.0.1:0", "the address to serve gRPC on and register (port 0: any free port; "+
		"an unspecified IP such as 0.0.0.0 cannot be registered)")
	service := flag.String("service", "echo", "the service to register under")
	weight := flag.Uint("weight", 10, "the server's own weight (0: the default, 1)")
	drained := flag.Bool("drained", false, "register with weight 0: no calls while another endpoint is ready")
	zone := flag.String("zone", "", "the server's zone")
	metricsAddr := flag.String("metrics", "", "serve Prometheus /metrics on this address, e.g. 127.0.0.1:9090")
	flag.Parse()
	if err := run(*etcd, *listen, *metricsAddr, registry.Registration{
		Service: *service, Weight: uint32(*weight), Drained: *drained, Zone: *zone}); err != nil {
		log.Fatal(err)
	}
}

func run(etcd, listen, metricsAddr string, r registry.Registration) error {
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

	lis, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go srv.Serve(lis)
	defer srv.Stop()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second) // Register waits for etcd
	defer cancel()
	r.Addr = lis.Addr().String() // what clients dial
	reg, err := registry.Register(ctx, cli, r, registry.WithTTL(10*time.Second), registry.WithMetrics(m))
	if err != nil {
		return err
	}
	log.Printf("serving on %s, registered in etcd as %s (lease %x)", lis.Addr(), reg.Key(), int64(reg.Lease()))

	stop, cancelStop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancelStop()
	<-stop.Done()
	// Deregister first: the key goes, clients stop picking this server while
	// it still serves; then the calls already sent finish.
	if err := reg.Close(); err != nil {
		log.Printf("deregister: %v", err)
	}
	srv.GracefulStop()
	return nil
}
