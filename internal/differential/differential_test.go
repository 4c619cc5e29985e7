package differential

import (
	"strings"
	"testing"
)

func TestAllowed(t *testing.T) {
	for _, tt := range []struct {
		calls, refCalls, refFailed int64
		sigmas                     float64
		want                       int64
	}{
		{calls: 1000, refCalls: 800, refFailed: 0, sigmas: 0, want: 0},
		{calls: 200, refCalls: 100, refFailed: 3, sigmas: 0, want: 6},
		{calls: 100, refCalls: 0, refFailed: 0, sigmas: 0, want: 0},
		{calls: 100, refCalls: 100, refFailed: 0, sigmas: 3, want: 3},  // sqrt(max(0, 1))
		{calls: 100, refCalls: 100, refFailed: 9, sigmas: 3, want: 18}, // 9 + 3*3
	} {
		if got := Allowed(tt.calls, tt.refCalls, tt.refFailed, tt.sigmas); got != tt.want {
			t.Errorf("Allowed(%d, %d, %d, %v) = %d, want %d", tt.calls, tt.refCalls, tt.refFailed, tt.sigmas, got, tt.want)
		}
	}
}

func TestCheck(t *testing.T) {
	rs := []Result{{"a", 1000, 0}, {Reference, 1000, 0}, {"b", 1000, 1}}
	err := Check(rs, 0)
	if err == nil || !strings.Contains(err.Error(), "b failed 1 of 1000") || strings.Contains(err.Error(), "a failed") {
		t.Errorf("Check: %v, want b named alone", err)
	}
	if err := Check(rs[:1], 0); err == nil {
		t.Error("Check without the reference's result: nil error")
	}
	if err := Check(rs, 3); err != nil {
		t.Errorf("Check with 3 sigmas: %v", err)
	}
}
