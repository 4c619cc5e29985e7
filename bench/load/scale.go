package load

import (
	"context"
	"fmt"
	"io"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	grpcresolver "google.golang.org/grpc/resolver"

	"github.com/etcdlb/etcdlb/endpoint"
	"github.com/etcdlb/etcdlb/internal/heap"
	"github.com/etcdlb/etcdlb/resolver/static"
)

// ScaleResult is one client over many backends.
type ScaleResult struct {
	Policy string
	N      int
	// ToReady is from the client's creation to its first READY; ToAll to
	// the moment every backend has served a call.
	ToReady, ToAll time.Duration
	// Calls made until every backend had one, and the fewest and most one
	// backend served.
	Calls, MinCalls, MaxCalls int64
	// HeapBytes is the live heap the client and its connections added
	// (both ends: the servers run in this process), after a GC.
	HeapBytes uint64
	Err       error
}

// ScaleBackends starts n backends with no service time, in this process:
// one grpc.Server on its own 127.0.0.1 port each.
func ScaleBackends(n int) ([]*Backend, error) {
	bs := make([]*Backend, 0, n)
	for i := range n {
		b, err := StartBackend(BackendSpec{Name: fmt.Sprintf("s%d", i), Weight: 1}, i)
		if err != nil {
			for _, b := range bs {
				b.Stop()
			}
			return nil, err
		}
		bs = append(bs, b)
	}
	return bs, nil
}

// Scale dials one client with policy over bs and makes calls from 32
// workers until every backend has served one, for at most timeout.
func Scale(ctx context.Context, p Policy, bs []*Backend, timeout time.Duration) ScaleResult {
	res := ScaleResult{Policy: p.Name, N: len(bs)}
	before := make([]int64, len(bs))
	eps := make([]grpcresolver.Endpoint, len(bs))
	for i, b := range bs {
		before[i] = b.Calls()
		eps[i] = endpoint.New(b.Addr, endpoint.Attrs{Weight: 1})
	}
	heap0 := heap.Live()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	conn, err := grpc.NewClient("scale:///svc", grpc.WithResolvers(static.New("scale", eps...)),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(p.ServiceConfig("")))
	if err != nil {
		res.Err = err
		return res
	}
	defer conn.Close()
	if res.Err = waitReady(ctx, conn, timeout); res.Err != nil {
		return res
	}
	res.ToReady = time.Since(start)
	client := testgrpc.NewTestServiceClient(conn)
	covered := func() bool {
		for i, b := range bs {
			if b.Calls() == before[i] {
				return false
			}
		}
		return true
	}
	wctx, stop := context.WithCancel(ctx)
	done := make(chan *Stats)
	go func() {
		done <- ClosedLoop(wctx, 32, Limit{}, func(ctx context.Context) error {
			_, err := client.EmptyCall(ctx, &testpb.Empty{}, grpc.WaitForReady(true))
			return err
		}, nil)
	}()
	tick := time.NewTicker(time.Millisecond)
	for !covered() && ctx.Err() == nil {
		<-tick.C
	}
	tick.Stop()
	res.ToAll = time.Since(start)
	stop()
	s := <-done
	res.Calls = s.OK.Load() + s.Errors.Load()
	if !covered() {
		res.Err = fmt.Errorf("not every backend got a call in %v", timeout)
	}
	res.MinCalls, res.MaxCalls = callSpread(bs, before)
	if h := heap.Live(); h > heap0 {
		res.HeapBytes = h - heap0
	}
	return res
}

// waitReady connects conn and waits until it is READY, at most until ctx
// ends (timeout is for the error).
func waitReady(ctx context.Context, conn *grpc.ClientConn, timeout time.Duration) error {
	conn.Connect()
	for s := conn.GetState(); s != connectivity.Ready; s = conn.GetState() {
		if !conn.WaitForStateChange(ctx, s) {
			return fmt.Errorf("not READY in %v (state %v)", timeout, s)
		}
	}
	return nil
}

// callSpread returns the fewest and the most calls a backend of bs served
// since before.
func callSpread(bs []*Backend, before []int64) (least, most int64) {
	least = -1
	for i, b := range bs {
		c := b.Calls() - before[i]
		if least < 0 || c < least {
			least = c
		}
		most = max(most, c)
	}
	return least, most
}

// WriteScaleMarkdown writes the scale runs as a table.
func WriteScaleMarkdown(w io.Writer, rs []ScaleResult) {
	fmt.Fprintln(w, "| policy | backends | to READY ms | to a call on every backend ms | calls made by then | fewest / most calls on one backend | heap added, MiB | |")
	fmt.Fprintln(w, "| --- | ---: | ---: | ---: | ---: | --- | ---: | --- |")
	for _, r := range rs {
		note := "every backend served calls"
		if r.Err != nil {
			note = r.Err.Error()
		}
		fmt.Fprintf(w, "| `%s` | %d | %.0f | %.0f | %d | %d / %d | %.1f | %s |\n", r.Policy, r.N,
			float64(r.ToReady)/1e6, float64(r.ToAll)/1e6, r.Calls, r.MinCalls, r.MaxCalls, float64(r.HeapBytes)/(1<<20), note)
	}
	fmt.Fprintln(w)
}
