package load

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/etcdlb/etcdlb/internal/testserver"
)

// Dist is a service-time distribution.
type Dist struct {
	// Mean is the mean service time.
	Mean time.Duration
	// Exp draws exponentially distributed times of mean Mean; false: every
	// call takes exactly Mean.
	Exp bool
}

// Fixed is a service time of exactly d.
func Fixed(d time.Duration) Dist { return Dist{Mean: d} }

// Exponential is an exponentially distributed service time of mean d.
func Exponential(d time.Duration) Dist { return Dist{Mean: d, Exp: true} }

// Sample draws one service time.
func (d Dist) Sample() time.Duration {
	if !d.Exp || d.Mean <= 0 {
		return d.Mean
	}
	return time.Duration(rand.ExpFloat64() * float64(d.Mean))
}

func (d Dist) String() string {
	switch {
	case d.Mean <= 0:
		return "0"
	case d.Exp:
		return "exp(" + d.Mean.String() + ")"
	}
	return d.Mean.String()
}

// BackendSpec describes one backend of a scenario.
type BackendSpec struct {
	Name   string
	Zone   string
	Weight uint32
	// Service is the time a call takes once it holds a slot.
	Service Dist
	// Limit is how many calls it serves at once; the others queue, in
	// arrival order, for a slot. 0: no limit.
	Limit int
}

// Backend is a real gRPC server on 127.0.0.1 (internal/testserver) serving
// calls with Spec's service time and concurrency limit. Its service time
// and failure rate can be changed while it runs, and it can be stopped and
// restarted on the same address.
type Backend struct {
	*testserver.Server
	Spec BackendSpec

	index    int
	service  atomic.Pointer[Dist]
	failRate atomic.Uint64 // a float64's bits: the fraction of calls failed
	sem      chan struct{}
	timeline atomic.Pointer[Timeline]
	done     atomic.Int64
}

// Done is how many calls the backend has finished, served or failed.
func (b *Backend) Done() int64 { return b.done.Load() }

// StartBackend starts a backend; index is its row in the Timelines it is
// given with Count.
func StartBackend(spec BackendSpec, index int) (*Backend, error) {
	srv, err := testserver.Start()
	if err != nil {
		return nil, err
	}
	b := &Backend{Server: srv, Spec: spec, index: index}
	if spec.Limit > 0 {
		b.sem = make(chan struct{}, spec.Limit)
	}
	b.SetService(spec.Service)
	srv.SetHandler(b.serve)
	return b, nil
}

// SetService changes the service time of the calls that start after it.
func (b *Backend) SetService(d Dist) { b.service.Store(&d) }

// SetFailRate makes a fraction p of the calls fail with Unavailable, after
// their service time.
func (b *Backend) SetFailRate(p float64) {
	b.failRate.Store(uint64(int64(p * (1 << 53))))
}

// Count makes the backend count the calls it receives in tl; nil stops it.
func (b *Backend) Count(tl *Timeline) { b.timeline.Store(tl) }

func (b *Backend) serve(ctx context.Context) error {
	defer b.done.Add(1)
	if tl := b.timeline.Load(); tl != nil {
		tl.Add(b.index, time.Now())
	}
	if b.sem != nil {
		select {
		case b.sem <- struct{}{}:
			defer func() { <-b.sem }()
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if d := b.service.Load().Sample(); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
	if p := b.failRate.Load(); p > 0 && rand.Uint64N(1<<53) < p {
		return status.Error(codes.Unavailable, fmt.Sprintf("load: backend %s: injected failure", b.Spec.Name))
	}
	return nil
}
