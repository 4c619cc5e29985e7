package bench

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/etcdlb/etcdlb/bench/load"
	"github.com/etcdlb/etcdlb/internal/embedetcd"
)

// BenchmarkLoad runs a short version of the load benchmark's scenarios
// (package load; the full run is `go run ./bench/load/cmd/loadbench`)
// with every policy, through real gRPC servers on 127.0.0.1, and reports
// throughput, latency percentiles, errors, each backend's share and the
// scenario's own measurements. Each scenario lasts 0.3 of its full length,
// 0.15 with -short (about a minute for all of them with -benchtime 1x).
func BenchmarkLoad(b *testing.B) {
	scale, timeout := 0.3, 5*time.Second
	if testing.Short() {
		scale, timeout = 0.15, 2*time.Second
	}
	etcd := embedetcd.StartT(b, embedetcd.Options{})
	cli := etcd.ClientT(b)
	for _, sc := range load.Scenarios() {
		for _, p := range load.Policies {
			b.Run("scenario="+sc.ID+"/policy="+p.Name, func(b *testing.B) {
				var r *load.Result
				for range b.N {
					var err error
					r, err = load.Run(context.Background(), sc, p, load.Options{Etcd: cli, Scale: scale, CallTimeout: timeout})
					if err != nil {
						b.Fatal(err)
					}
				}
				reportLoad(b, r)
			})
		}
	}
}

func reportLoad(b *testing.B, r *load.Result) {
	h := &r.Stats.Hist
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(r.RPS(), "calls/s")
	b.ReportMetric(float64(h.Quantile(0.5))/1e6, "p50-ms")
	b.ReportMetric(float64(h.Quantile(0.99))/1e6, "p99-ms")
	b.ReportMetric(float64(r.Stats.Errors.Load()), "errors")
	for i, s := range r.Shares() {
		b.ReportMetric(100*s, r.Scenario.Backends[i].Name+"-share-%")
	}
	for _, m := range r.Metrics {
		if m.Unit != "" {
			b.ReportMetric(m.Value, strings.ReplaceAll(m.Name, " ", "-")+"-"+m.Unit)
		}
	}
}

// BenchmarkLoadScale dials one client per policy over 1,000 real backends
// (100 with -short) and reports the time until it is READY and until every
// backend has served a call, and the heap it added.
func BenchmarkLoadScale(b *testing.B) {
	n := 1000
	if testing.Short() {
		n = 100
	}
	bs, err := load.ScaleBackends(n)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		for _, s := range bs {
			s.Stop()
		}
	})
	for _, p := range load.Policies {
		if p.Name == "pick_first" {
			continue // one backend by design
		}
		b.Run("policy="+p.Name, func(b *testing.B) {
			var r load.ScaleResult
			for range b.N {
				if r = load.Scale(context.Background(), p, bs, time.Minute); r.Err != nil {
					b.Fatal(r.Err)
				}
			}
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(float64(r.ToReady)/1e6, "ms-to-ready")
			b.ReportMetric(float64(r.ToAll)/1e6, "ms-to-all-called")
			b.ReportMetric(float64(r.HeapBytes)/(1<<20), "MiB-heap")
			b.ReportMetric(float64(r.N), "backends")
		})
	}
}
