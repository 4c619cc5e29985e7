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
	leaked := s.wait(50 * time.Millisecond)
	if len(leaked) != 1 || !strings.Contains(leaked[0], "leakcheck.leakyWorker") {
		t.Fatalf("leaked: %q, want leakyWorker's stack", leaked)
	}
	close(stop)
	if leaked := s.wait(Timeout); len(leaked) != 0 {
		t.Fatalf("after the worker stopped, leaked: %q", leaked)
	}
}

func TestWaitsForAGoroutineEnding(t *testing.T) {
	s := Take()
	stop := make(chan struct{})
	go leakyWorker(stop)
	time.AfterFunc(20*time.Millisecond, func() { close(stop) })
	s.Check(t) // fails t unless it waits for the worker to end
}

func TestIgnoresOldGoroutinesAndSubtests(t *testing.T) {
	stop := make(chan struct{})
	defer close(stop)
	go leakyWorker(stop) // before the snapshot
	s := Take()
	t.Run("sub", func(t *testing.T) {
		if leaked := s.leaked(); len(leaked) != 0 {
			t.Errorf("leaked: %q, want none", leaked)
		}
	})
}

func leakyWorker(stop <-chan struct{}) { <-stop }
