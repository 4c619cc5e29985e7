package main

import (
	"flag"
	"net"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/etcdlb/etcdlb/metrics"
	"github.com/etcdlb/etcdlb/registry"

	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/peer"

	lbpolicies "github.com/etcdlb/etcdlb/balancer"
	"github.com/etcdlb/etcdlb/internal/embedetcd"
	"github.com/etcdlb/etcdlb/internal/testserver"
	"github.com/etcdlb/etcdlb/resolver"
)

var demoCmd = &command{
	name: "demo",
	usage: `Usage: etcdlb demo [--short] [--forever] [--step D]

Starts an embedded etcd on 127.0.0.1, six gRPC backends in zones a and b that
register themselves under the service "demo", and one client per policy
(etcdlb_round_robin, etcdlb_weighted, etcdlb_least_inflight), all in zone a.
It shows live who serves the calls, and runs a narrated scenario: steady
state, a weight raised in etcd, a backend drained, a backend killed, zone a
lost and recovered. Each step checks what it claims and prints PASS or FAIL;
the exit code is 1 if a check failed.

While it runs, try the other commands from another terminal against the
etcd endpoint it prints, e.g. "etcdlb ls demo --endpoints=...".
Ctrl-C stops it cleanly at any time.
`,
	maxArgs: 0,
	flags:   demoFlags,
	run:     runDemo,
}

const demoService = "demo"

// demoBackend is one backend as the demo starts it.
type demoBackend struct {
	name   string
	zone   string
	weight uint32
	delay  time.Duration

	srv *testserver.Server
	reg *registry.Registrar
}

// demoPolicies are etcdlb's policies, one client each, in the order of the
// balancer's table.
var demoPolicies = lbpolicies.Names()

// demoConfig is how the demo runs.
type demoConfig struct {
	step    time.Duration // how long a step shows its state, at least
	refresh time.Duration // view refresh and stats window
	forever bool
	tty     bool
	// metricsAddr is the listen address of the metrics endpoint.
	metricsAddr string
}

func demoFlags(fs *flag.FlagSet, a *invocation) {
	fs.BoolVar(&a.short, "short", false, "run each step only until its check passes (about 15s in all)")
	fs.BoolVar(&a.demo.forever, "forever", false, "keep running after the scenario until Ctrl-C")
	fs.DurationVar(&a.demo.step, "step", 8*time.Second, "how long each step of the scenario lasts")
	fs.StringVar(&a.demo.metricsAddr, "metrics-addr", "127.0.0.1:0", "where to serve the Prometheus metrics (/metrics); port 0 picks a free one")
}

func runDemo(c *command, e *env, a *invocation) int {
	cfg := a.demo
	cfg.refresh, cfg.tty = 500*time.Millisecond, isTerminal(os.Stdout)
	if a.short {
		cfg.step, cfg.refresh = 0, 250*time.Millisecond
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	d := &demo{env: e, cfg: cfg}
	return d.run(ctx)
}

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// demo is one run of the demo.
type demo struct {
	env *env
	cfg demoConfig

	etcd     *embedetcd.Cluster
	cli      *clientv3.Client
	backends []*demoBackend
	conns    []*grpc.ClientConn
	stats    *stats
	view     *view

	metricsSrv *http.Server
	metricsURL string

	stopLoad func()
}

func (d *demo) run(ctx context.Context) int {
	defer d.shutdown()
	if err := d.start(); err != nil {
		fmt.Fprintf(d.env.stderr, "etcdlb demo: %v\n", err)
		return exitError
	}
	d.view.header()
	viewDone := make(chan struct{})
	viewCtx, stopView := context.WithCancel(context.Background())
	go func() { defer close(viewDone); d.view.run(viewCtx) }()
	defer func() { stopView(); <-viewDone }()

	failed := d.scenario(ctx)
	if ctx.Err() != nil {
		d.view.say("interrupted: shutting down")
		return exitError
	}
	if failed > 0 {
		d.view.say(fmt.Sprintf("done: %d check(s) FAILED", failed))
	} else {
		d.view.say("done: every check passed")
	}
	if d.cfg.forever {
		d.view.say("--forever: still running; Ctrl-C to stop")
		<-ctx.Done()
	}
	if failed > 0 {
		return exitError
	}
	return exitOK
}

// start brings up etcd, the backends and the clients.
func (d *demo) start() error {
	var err error
	if d.etcd, err = embedetcd.Start(embedetcd.Options{}); err != nil {
		return fmt.Errorf("start etcd: %w", err)
	}
	if d.cli, err = d.etcd.Client(); err != nil {
		return fmt.Errorf("etcd client: %w", err)
	}
	quiet := slog.New(slog.DiscardHandler)
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	if err := d.serveMetrics(reg); err != nil {
		return err
	}
	d.backends = []*demoBackend{
		{name: "a1", zone: "a", weight: 10, delay: 2 * time.Millisecond},
		{name: "a2", zone: "a", weight: 20, delay: 2 * time.Millisecond},
		{name: "a3", zone: "a", weight: 30, delay: 4 * time.Millisecond},
		{name: "b1", zone: "b", weight: 10, delay: 3 * time.Millisecond},
		{name: "b2", zone: "b", weight: 20, delay: 3 * time.Millisecond},
		{name: "b3", zone: "b", weight: 30, delay: 6 * time.Millisecond},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, b := range d.backends {
		if b.srv, err = testserver.Start(); err != nil {
			return err
		}
		b.srv.SetDelay(b.delay)
		b.reg, err = registry.Register(ctx, d.cli, registry.Registration{
			Service: demoService, Addr: b.srv.Addr, Weight: b.weight, Zone: b.zone,
			Metadata: map[string]string{"name": b.name},
		}, registry.WithTTL(5*time.Second), registry.WithLogger(quiet), registry.WithMetrics(m))
		if err != nil {
			return fmt.Errorf("register %s: %w", b.name, err)
		}
	}
	d.stats = newStats(d.backends, len(demoPolicies))
	for _, p := range demoPolicies {
		sc := fmt.Sprintf(`{"loadBalancingConfig":[{%q:{"localZone":"a"}}]}`, p)
		conn, err := grpc.NewClient("etcd:///"+demoService,
			grpc.WithResolvers(resolver.NewBuilder(d.cli, resolver.WithLogger(quiet), resolver.WithMetrics(m))),
			grpc.WithDefaultServiceConfig(sc),
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			// Reconnect within a second when a killed backend comes back,
			// rather than after grpc's default backoff of up to 2 minutes.
			grpc.WithConnectParams(grpc.ConnectParams{Backoff: backoff.Config{
				BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second,
			}, MinConnectTimeout: time.Second}))
		if err != nil {
			return fmt.Errorf("client %s: %w", p, err)
		}
		d.conns = append(d.conns, conn)
	}
	d.view = newView(d)
	d.startLoad()
	return nil
}

// serveMetrics serves reg on /metrics at the configured address.
func (d *demo) serveMetrics(reg *prometheus.Registry) error {
	lis, err := net.Listen("tcp", d.cfg.metricsAddr)
	if err != nil {
		return fmt.Errorf("metrics: listen on %s: %w", d.cfg.metricsAddr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	d.metricsSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	d.metricsURL = "http://" + lis.Addr().String() + "/metrics"
	go d.metricsSrv.Serve(lis)
	return nil
}

// startLoad runs a steady, bounded call loop per client: a few goroutines,
// each making at most one call every 10ms.
func (d *demo) startLoad() {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	const workers = 2
	for pi, conn := range d.conns {
		client := testgrpc.NewTestServiceClient(conn)
		for range workers {
			wg.Go(func() {
				tick := time.NewTicker(10 * time.Millisecond)
				defer tick.Stop()
				for {
					select {
					case <-ctx.Done():
						return
					case <-tick.C:
					}
					var p peer.Peer
					callCtx, cancelCall := context.WithTimeout(ctx, time.Second)
					start := time.Now()
					_, err := client.EmptyCall(callCtx, &testpb.Empty{}, grpc.Peer(&p))
					cancelCall()
					if ctx.Err() != nil {
						return
					}
					addr := ""
					if err == nil && p.Addr != nil {
						addr = p.Addr.String()
					}
					d.stats.record(pi, addr, err, time.Since(start))
				}
			})
		}
	}
	d.stopLoad = func() { cancel(); wg.Wait() }
}

// shutdown stops everything start started, in reverse order; it is safe
// after a partial start.
func (d *demo) shutdown() {
	if d.stopLoad != nil {
		d.stopLoad()
	}
	for _, c := range d.conns {
		c.Close()
	}
	for _, b := range d.backends {
		if b.reg != nil {
			b.reg.Close()
		}
		if b.srv != nil {
			b.srv.Stop()
		}
	}
	if d.metricsSrv != nil {
		d.metricsSrv.Close()
	}
	if d.cli != nil {
		d.cli.Close()
	}
	if d.etcd != nil {
		d.etcd.Close()
	}
}
