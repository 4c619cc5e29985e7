package load

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Call makes one request; the load generators time it and count its error.
// It must bound itself (a deadline on ctx), so that a run ends.
type Call func(ctx context.Context) error

// Observer sees every finished call: when it was meant to start, its
// latency from then, and its error.
type Observer func(intended time.Time, latency time.Duration, err error)

// Limit bounds a run: it stops sending at the first of Duration and
// Requests (when > 0), then waits for the calls in flight.
type Limit struct {
	Duration time.Duration
	Requests int64
}

// Stats is what a generator measured: the latency of successful calls,
// and counts.
type Stats struct {
	Hist    Histogram
	OK      atomic.Int64
	Errors  atomic.Int64
	Dropped atomic.Int64 // open loop: not sent, as MaxOutstanding were in flight
	Elapsed time.Duration
}

func (s *Stats) record(obs Observer, intended time.Time, err error) {
	lat := time.Since(intended)
	if err != nil {
		s.Errors.Add(1)
	} else {
		s.OK.Add(1)
		s.Hist.Record(lat)
	}
	if obs != nil {
		obs(intended, lat, err)
	}
}

// ClosedLoop runs concurrency workers, each making one call after another,
// until lim or ctx ends. Latency is from each call's start.
func ClosedLoop(ctx context.Context, concurrency int, lim Limit, call Call, obs Observer) *Stats {
	s := &Stats{}
	start := time.Now()
	deadline := farFuture(start, lim.Duration)
	var sent atomic.Int64
	var wg sync.WaitGroup
	for range max(concurrency, 1) {
		wg.Go(func() {
			for ctx.Err() == nil && time.Now().Before(deadline) {
				if lim.Requests > 0 && sent.Add(1) > lim.Requests {
					return
				}
				t := time.Now()
				s.record(obs, t, call(ctx))
			}
		})
	}
	wg.Wait()
	s.Elapsed = time.Since(start)
	return s
}

// OpenLoop starts calls at a fixed rate (per second), each at its own
// intended time start + i/rate, whether or not earlier calls have finished,
// until lim or ctx ends. Latency is measured from the intended time, so a
// late send (a busy machine, a slow scheduler) counts against the call, and
// queueing is not hidden (no coordinated omission). At most maxOutstanding
// calls are in flight; a call due beyond that is dropped and counted.
func OpenLoop(ctx context.Context, rate float64, maxOutstanding int, lim Limit, call Call, obs Observer) *Stats {
	s := &Stats{}
	interval := time.Duration(float64(time.Second) / rate)
	start := time.Now()
	deadline := farFuture(start, lim.Duration)
	var outstanding atomic.Int64
	var wg sync.WaitGroup
	for i := int64(0); lim.Requests <= 0 || i < lim.Requests; i++ {
		due := start.Add(time.Duration(i) * interval)
		if !due.Before(deadline) {
			break
		}
		if wait := time.Until(due); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
			}
		}
		if ctx.Err() != nil {
			break
		}
		if outstanding.Load() >= int64(maxOutstanding) {
			s.Dropped.Add(1)
			s.Errors.Add(1)
			continue
		}
		outstanding.Add(1)
		wg.Go(func() {
			defer outstanding.Add(-1)
			s.record(obs, due, call(ctx))
		})
	}
	wg.Wait()
	s.Elapsed = time.Since(start)
	return s
}

func farFuture(start time.Time, d time.Duration) time.Time {
	if d <= 0 {
		d = 100 * 365 * 24 * time.Hour
	}
	return start.Add(d)
}
