package workers

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/etcdlb/etcdlb/internal/poll"
)

func TestStopWaitsForEveryWorker(t *testing.T) {
	var running, calls atomic.Int64
	stop := Start(3, func() bool {
		running.Add(1)
		calls.Add(1)
		running.Add(-1)
		return true
	})
	if !poll.Until(10*time.Second, func() bool { return calls.Load() >= 1000 }) {
		t.Fatalf("work called %d times in 10 s", calls.Load())
	}
	stop()
	if n := running.Load(); n != 0 {
		t.Errorf("%d workers still inside work after stop returned", n)
	}
	after := calls.Load()
	stop() // a second stop is harmless
	if calls.Load() != after {
		t.Error("work was called after stop returned")
	}
}

func TestWorkEndsItsGoroutine(t *testing.T) {
	var calls atomic.Int64
	stop := Start(4, func() bool { calls.Add(1); return false })
	if !poll.Until(10*time.Second, func() bool { return calls.Load() == 4 }) {
		t.Fatalf("work called %d times on 4 goroutines, want 4", calls.Load())
	}
	stop()
	if n := calls.Load(); n != 4 {
		t.Errorf("work called %d times on 4 goroutines that each ended at once, want 4", n)
	}
}
