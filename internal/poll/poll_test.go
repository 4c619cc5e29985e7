package poll

import (
	"testing"
	"time"
)

func TestUntil(t *testing.T) {
	n := 0
	if !Until(time.Second, func() bool { n++; return n == 3 }) {
		t.Errorf("Until gave up on a condition that held on the third ask")
	}
	if n != 3 {
		t.Errorf("cond asked %d times, want 3", n)
	}
	if Until(20*time.Millisecond, func() bool { return false }) {
		t.Error("Until reported a condition that never held")
	}
}
