package leakcheck

import (
	"strings"
	"testing"
	"time"
)

func TestFindsALeakAndItsStack(t *testing.T) {
	s := Take()
	stop := make(chan struct{})
	go leakyWorker(stop)
	err := s.wait(50 * time.Millisecond)
	if err == nil || strings.Count(err.Error(), "leakcheck.leakyWorker(") != 1 {
		t.Fatalf("leaked: %v, want leakyWorker's stack", err)
	}
	close(stop)
	if err := s.wait(Timeout); err != nil {
		t.Fatalf("after the worker stopped, leaked: %v", err)
	}
}

func TestWaitsForAGoroutineEnding(t *testing.T) {
	s := Take()
	stop := make(chan struct{})
	go leakyWorker(stop)
	time.AfterFunc(20*time.Millisecond, func() { close(stop) })
	s.Check(t) // fails t unless it waits for the worker to end
}

// TestWaitsLongerThanGoleak: a goroutine that ends after goleak's own
// retries (about 0.4 s) is not a leak.
func TestWaitsLongerThanGoleak(t *testing.T) {
	s := Take()
	stop := make(chan struct{})
	go leakyWorker(stop)
	time.AfterFunc(time.Second, func() { close(stop) })
	s.Check(t)
}

func TestIgnoresOldGoroutinesAndSubtests(t *testing.T) {
	stop := make(chan struct{})
	defer close(stop)
	go leakyWorker(stop) // before the snapshot
	s := Take()
	t.Run("sub", func(t *testing.T) {
		if err := s.wait(0); err != nil {
			t.Errorf("leaked: %v, want none", err)
		}
	})
}

func leakyWorker(stop <-chan struct{}) { <-stop }
