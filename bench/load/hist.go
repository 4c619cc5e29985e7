package load

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// histBits is the precision of a Histogram: 2^histBits buckets per power of
// two, so a value is kept within 1/2^(histBits+1) of itself (0.4%).
const histBits = 7

// histMax is the largest value a Histogram tells apart; larger ones count in
// its last bucket. 2^40 ns is about 18 minutes.
const histMax = 1<<40 - 1

const histBuckets = (40 - histBits + 1) << histBits

// Histogram counts durations in log-spaced buckets, HDR-style: values below
// 2^(histBits+1) ns exactly, larger ones in buckets 1/2^histBits of their
// power of two wide. Its memory is fixed (about 34 KiB) whatever it counts.
// Record is safe from many goroutines at once; read it when they are done.
type Histogram struct {
	counts [histBuckets]atomic.Int64
	n      atomic.Int64
	sum    atomic.Int64
	max    atomic.Int64
}

// bucketOf returns the bucket of v ns.
func bucketOf(v int64) int {
	if v < 0 {
		v = 0
	}
	if v > histMax {
		v = histMax
	}
	u := uint64(v)
	shift := bits.Len64(u) - (histBits + 1)
	if shift <= 0 {
		return int(u)
	}
	return (shift+1)<<histBits + int(u>>shift) - 1<<histBits
}

// bucketRange returns the smallest and largest value of bucket i.
func bucketRange(i int) (lo, hi int64) {
	if i < 2<<histBits {
		return int64(i), int64(i)
	}
	shift := i>>histBits - 1
	sub := int64(i&(1<<histBits-1) + 1<<histBits)
	lo = sub << shift
	return lo, lo + 1<<shift - 1
}

// Record counts one duration.
func (h *Histogram) Record(d time.Duration) {
	v := int64(d)
	h.counts[bucketOf(v)].Add(1)
	h.n.Add(1)
	h.sum.Add(v)
	for m := h.max.Load(); v > m && !h.max.CompareAndSwap(m, v); m = h.max.Load() {
	}
}

// Merge adds o's counts to h.
func (h *Histogram) Merge(o *Histogram) {
	for i := range o.counts {
		if c := o.counts[i].Load(); c != 0 {
			h.counts[i].Add(c)
		}
	}
	h.n.Add(o.n.Load())
	h.sum.Add(o.sum.Load())
	if m := o.max.Load(); m > h.max.Load() {
		h.max.Store(m)
	}
}

// Count is the number of durations recorded.
func (h *Histogram) Count() int64 { return h.n.Load() }

// Max is the largest duration recorded.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max.Load()) }

// Mean is the mean duration recorded, 0 when none was.
func (h *Histogram) Mean() time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	return time.Duration(h.sum.Load() / n)
}

// Quantile returns the q-quantile (0 < q ≤ 1): the middle of the bucket
// holding the sample of rank ceil(q·n) in sorted order, so within
// 1/2^(histBits+1) of that sample. 0 when nothing was recorded.
func (h *Histogram) Quantile(q float64) time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	rank := int64(math.Ceil(q * float64(n)))
	rank = max(1, min(rank, n))
	var seen int64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			lo, hi := bucketRange(i)
			return time.Duration(min(lo+(hi-lo)/2, h.max.Load()))
		}
	}
	return h.Max()
}
