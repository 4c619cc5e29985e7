package load

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestBucketsCoverEveryValueOnce(t *testing.T) {
	prevHi := int64(-1)
	for i := 0; i < histBuckets; i++ {
		lo, hi := bucketRange(i)
		if lo != prevHi+1 || hi < lo {
			t.Fatalf("bucket %d is [%d, %d], want it to start at %d", i, lo, hi, prevHi+1)
		}
		if bucketOf(lo) != i || bucketOf(hi) != i {
			t.Fatalf("bucket %d [%d, %d]: bucketOf gives %d and %d", i, lo, hi, bucketOf(lo), bucketOf(hi))
		}
		if w := hi - lo + 1; lo >= 2<<histBits && float64(w)/float64(lo) > 1.0/(1<<histBits) {
			t.Fatalf("bucket %d [%d, %d] is wider than 1/%d of its values", i, lo, hi, 1<<histBits)
		}
		prevHi = hi
	}
	if prevHi != histMax {
		t.Fatalf("last bucket ends at %d, want %d", prevHi, int64(histMax))
	}
	if got := bucketOf(math.MaxInt64); got != histBuckets-1 {
		t.Fatalf("bucketOf(MaxInt64) = %d, want the last bucket", got)
	}
	if got := bucketOf(-5); got != 0 {
		t.Fatalf("bucketOf(-5) = %d, want 0", got)
	}
}

// Quantiles agree with the sorted samples within the bucket precision, for
// distributions shaped like latencies.
func TestQuantilesAgainstSortedSamples(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	dists := map[string]func() int64{
		"uniform-small": func() int64 { return r.Int64N(300) },
		"exponential":   func() int64 { return int64(r.ExpFloat64() * 2e6) },
		"lognormal":     func() int64 { return int64(math.Exp(r.NormFloat64()*1.5) * 1e6) },
		"bimodal": func() int64 {
			if r.IntN(100) == 0 {
				return 50e6 + r.Int64N(1e6)
			}
			return 1e6 + r.Int64N(1e5)
		},
	}
	for name, next := range dists {
		t.Run(name, func(t *testing.T) {
			var h Histogram
			samples := make([]int64, 100_000)
			for i := range samples {
				samples[i] = next()
				h.Record(time.Duration(samples[i]))
			}
			slices.Sort(samples)
			for _, q := range []float64{0.001, 0.1, 0.5, 0.9, 0.99, 0.999, 0.9999, 1} {
				rank := int(math.Ceil(q * float64(len(samples))))
				want := samples[rank-1]
				got := int64(h.Quantile(q))
				tol := float64(want)/(2<<histBits) + 1
				if math.Abs(float64(got-want)) > tol {
					t.Errorf("q=%v: got %d, want %d ± %.0f", q, got, want, tol)
				}
			}
			if h.Count() != int64(len(samples)) || int64(h.Max()) != samples[len(samples)-1] {
				t.Errorf("count %d max %d, want %d and %d", h.Count(), h.Max(), len(samples), samples[len(samples)-1])
			}
		})
	}
}

func TestHistogramMergeAndEmpty(t *testing.T) {
	var a, b, all Histogram
	if a.Quantile(0.99) != 0 || a.Mean() != 0 {
		t.Fatal("empty histogram reports a value")
	}
	for i := 1; i <= 1000; i++ {
		d := time.Duration(i) * time.Microsecond
		all.Record(d)
		if i%3 == 0 {
			a.Record(d)
		} else {
			b.Record(d)
		}
	}
	a.Merge(&b)
	for _, q := range []float64{0.5, 0.9, 0.99, 1} {
		if a.Quantile(q) != all.Quantile(q) {
			t.Errorf("q=%v: merged %v, direct %v", q, a.Quantile(q), all.Quantile(q))
		}
	}
	if a.Count() != 1000 || a.Max() != time.Millisecond || a.Mean() != all.Mean() {
		t.Errorf("merged count %d max %v mean %v", a.Count(), a.Max(), a.Mean())
	}
}
