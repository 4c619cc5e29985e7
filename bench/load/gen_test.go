package load

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestClosedLoopConcurrencyAndRequests(t *testing.T) {
	var now, peak atomic.Int64
	var calls atomic.Int64
	call := func(ctx context.Context) error {
		n := now.Add(1)
		defer now.Add(-1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		time.Sleep(100 * time.Microsecond)
		if calls.Add(1)%10 == 0 {
			return errors.New("every tenth fails")
		}
		return nil
	}
	s := ClosedLoop(context.Background(), 4, Limit{Requests: 500, Duration: time.Minute}, call, nil)
	if got := s.OK.Load() + s.Errors.Load(); got != 500 {
		t.Fatalf("made %d calls, want exactly 500", got)
	}
	if s.Errors.Load() != 50 || s.Hist.Count() != 450 {
		t.Errorf("errors %d, histogram %d: want 50 and 450", s.Errors.Load(), s.Hist.Count())
	}
	if peak.Load() > 4 {
		t.Errorf("%d calls in flight at once, want at most 4", peak.Load())
	}
}

func TestClosedLoopStopsAtDurationAndContext(t *testing.T) {
	block := func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(20 * time.Millisecond); cancel() }()
	s := ClosedLoop(ctx, 3, Limit{}, block, nil)
	if s.Errors.Load() != 3 {
		t.Errorf("cancelled run: %d errors, want the 3 calls in flight", s.Errors.Load())
	}
	quick := func(context.Context) error { return nil }
	s = ClosedLoop(context.Background(), 2, Limit{Duration: 30 * time.Millisecond}, quick, nil)
	if s.OK.Load() == 0 {
		t.Error("a run bounded by time made no call")
	}
}

// The open loop starts call i at start + i/rate and measures from there,
// even when calls take longer than the interval.
func TestOpenLoopIntendedTimes(t *testing.T) {
	var mu sync.Mutex
	var intended []time.Time
	var lats []time.Duration
	slow := func(context.Context) error { time.Sleep(5 * time.Millisecond); return nil }
	obs := func(at time.Time, lat time.Duration, err error) {
		mu.Lock()
		intended = append(intended, at)
		lats = append(lats, lat)
		mu.Unlock()
	}
	s := OpenLoop(context.Background(), 1000, 100, Limit{Requests: 50, Duration: time.Minute}, slow, obs)
	if s.OK.Load() != 50 || len(intended) != 50 {
		t.Fatalf("%d calls observed, want 50", len(intended))
	}
	first := intended[0]
	for _, at := range intended {
		if at.Before(first) {
			first = at
		}
	}
	seen := map[time.Duration]bool{}
	for i, at := range intended {
		off := at.Sub(first)
		if off%time.Millisecond != 0 || off >= 50*time.Millisecond || seen[off] {
			t.Fatalf("intended offsets are not 0, 1ms, ..., 49ms: %v", off)
		}
		seen[off] = true
		if lats[i] < 5*time.Millisecond {
			t.Fatalf("latency %v is shorter than the call itself", lats[i])
		}
	}
}

func TestOpenLoopDropsBeyondMaxOutstanding(t *testing.T) {
	// The calls hold their slot far longer than the 20 are due (0.2 ms).
	hold, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	block := func(context.Context) error { <-hold.Done(); return nil }
	s := OpenLoop(context.Background(), 100_000, 5, Limit{Requests: 20}, block, nil)
	if s.OK.Load() != 5 || s.Dropped.Load() != 15 || s.Errors.Load() != 15 {
		t.Errorf("ok %d dropped %d errors %d: want 5 sent, 15 dropped and counted as errors",
			s.OK.Load(), s.Dropped.Load(), s.Errors.Load())
	}
}
