package differential

import (
	"strings"
	"testing"
)

func TestWorse(t *testing.T) {
	for _, tt := range []struct {
		r, ref Result
		chance bool
		want   bool
	}{
		{r: Result{"x", 1000, 0}, ref: Result{Reference, 800, 0}, want: false},
		{r: Result{"x", 1000, 1}, ref: Result{Reference, 800, 0}, want: true},
		{r: Result{"x", 200, 6}, ref: Result{Reference, 100, 3}, want: false},
		{r: Result{"x", 200, 7}, ref: Result{Reference, 100, 3}, want: true},
		{r: Result{"x", 100, 5}, ref: Result{Reference, 0, 0}, want: true},
		// By chance: 4 against 0 in equal calls happens 1 time in 16.
		{r: Result{"x", 1000, 4}, ref: Result{Reference, 1000, 0}, chance: true, want: false},
		// 10 against 0: 1 in 1024.
		{r: Result{"x", 1000, 10}, ref: Result{Reference, 1000, 0}, chance: true, want: true},
		{r: Result{"x", 9394, 799}, ref: Result{Reference, 9377, 794}, chance: true, want: false},
		{r: Result{"x", 9394, 900}, ref: Result{Reference, 9377, 750}, chance: true, want: true},
		{r: Result{"x", 1000, 0}, ref: Result{Reference, 1000, 30}, chance: true, want: false},
	} {
		if got := Worse(tt.r, tt.ref, tt.chance); got != tt.want {
			t.Errorf("Worse(%v, %v, chance %v) = %v, want %v", tt.r, tt.ref, tt.chance, got, tt.want)
		}
	}
}

func TestBinomialTail(t *testing.T) {
	for _, tt := range []struct {
		n, k int64
		p    float64
		want float64
	}{
		{n: 4, k: 4, p: 0.5, want: 1.0 / 16},
		{n: 4, k: 0, p: 0.5, want: 1},
		{n: 3, k: 2, p: 0.5, want: 0.5},
		{n: 10, k: 10, p: 0.5, want: 1.0 / 1024},
	} {
		if got := binomialTail(tt.n, tt.k, tt.p); got < tt.want*(1-1e-9) || got > tt.want*(1+1e-9) {
			t.Errorf("binomialTail(%d, %d, %v) = %v, want %v", tt.n, tt.k, tt.p, got, tt.want)
		}
	}
}

func TestCheck(t *testing.T) {
	rs := []Result{{"a", 1000, 0}, {Reference, 1000, 0}, {"b", 1000, 1}}
	err := Check(rs, false)
	if err == nil || !strings.Contains(err.Error(), "b failed 1 of 1000") || strings.Contains(err.Error(), "a failed") {
		t.Errorf("Check: %v, want b named alone", err)
	}
	if err := Check(rs[:1], false); err == nil {
		t.Error("Check without the reference's result: nil error")
	}
	if err := Check(rs, true); err != nil {
		t.Errorf("Check of failures by chance: %v", err)
	}
}
