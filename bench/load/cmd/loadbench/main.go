// Command loadbench runs etcdlb's end-to-end load benchmark: every scenario
// of package load with every policy, etcdlb's and grpc-go's, then one
// client over many backends. It writes the tables to <out>/load.md and one
// chart per scenario to <out>/load-<scenario>.svg, and stops by itself.
//
//	go run ./bench/load/cmd/loadbench -out bench/
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"time"

	"github.com/etcdlb/etcdlb/bench/load"
	"github.com/etcdlb/etcdlb/internal/embedetcd"
)

func main() {
	out := flag.String("out", "bench", "directory for load.md and the SVG charts")
	scale := flag.Float64("scale", 1, "multiplies every scenario's duration")
	only := flag.String("run", "", "regexp: only the scenarios whose id matches")
	scaleN := flag.Int("backends", 1000, "backends of the scale run; 0 skips it")
	flag.Parse()
	if err := run(*out, *scale, *only, *scaleN); err != nil {
		fmt.Fprintln(os.Stderr, "loadbench:", err)
		os.Exit(1)
	}
}

func run(out string, scale float64, only string, scaleN int) error {
	re, err := regexp.Compile(only)
	if err != nil {
		return fmt.Errorf("-run: %w", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	defer cancel()

	etcd, err := embedetcd.Start(embedetcd.Options{})
	if err != nil {
		return err
	}
	defer etcd.Close()
	cli, err := etcd.Client()
	if err != nil {
		return err
	}
	defer cli.Close()

	began := time.Now()
	var scs []*load.Scenario
	for _, sc := range load.Scenarios() {
		if re.MatchString(sc.ID) {
			scs = append(scs, sc)
		}
	}
	rs, err := load.RunAll(ctx, scs, load.Policies, load.Options{Etcd: cli, Scale: scale}, func(r *load.Result) {
		fmt.Fprintf(os.Stderr, "%s %s: %.0f/s p99 %v errors %d\n", r.Scenario.ID, r.Policy.Name,
			r.RPS(), r.Stats.Hist.Quantile(0.99), r.Stats.Errors.Load())
	})
	if err != nil {
		return err
	}
	var md bytes.Buffer
	fmt.Fprintf(&md, "Run: `go run ./bench/load/cmd/loadbench -out %s -scale %v -backends %d`, %s, GOMAXPROCS=%d, %s, load average at the end %s.\n\n",
		out, scale, scaleN, runtime.Version(), runtime.GOMAXPROCS(0), time.Now().UTC().Format("2006-01-02"), loadavg())
	load.WriteMarkdown(&md, rs, "load-")
	for _, sc := range rs.Scenarios() {
		var svg bytes.Buffer
		load.WriteSVG(&svg, rs, sc)
		if err := os.WriteFile(filepath.Join(out, "load-"+sc.ID+".svg"), svg.Bytes(), 0o644); err != nil {
			return err
		}
	}
	if scaleN > 0 {
		fmt.Fprintf(os.Stderr, "starting %d backends ... ", scaleN)
		t0 := time.Now()
		bs, err := load.ScaleBackends(scaleN)
		if err != nil {
			return err
		}
		started := time.Since(t0).Round(time.Millisecond)
		fmt.Fprintf(os.Stderr, "%v\n", started)
		var srs []load.ScaleResult
		for _, p := range load.Policies {
			if p.Name == "pick_first" {
				continue // one backend by design
			}
			fmt.Fprintf(os.Stderr, "scale %s ... ", p.Name)
			sr := load.Scale(ctx, p, bs, 2*time.Minute)
			fmt.Fprintf(os.Stderr, "READY %v, all %v, err %v\n", sr.ToReady, sr.ToAll, sr.Err)
			srs = append(srs, sr)
		}
		for _, b := range bs {
			b.Stop()
		}
		fmt.Fprintf(&md, "### Scale: one client over %d backends\n\n", scaleN)
		fmt.Fprintf(&md, "%d `grpc.Server`s on their own 127.0.0.1 ports in this process, started in %v. Each policy gets a new client, 32 workers calling with wait-for-ready until every backend has served a call.\n\n",
			scaleN, started)
		load.WriteScaleMarkdown(&md, srs)
	}
	fmt.Fprintf(&md, "Whole run: %v.\n", time.Since(began).Round(time.Second))
	os.Stdout.Write(md.Bytes())
	return os.WriteFile(filepath.Join(out, "load.md"), md.Bytes(), 0o644)
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil || len(b) < 14 {
		return "unknown"
	}
	return string(bytes.Join(bytes.Fields(b)[:3], []byte(" ")))
}
