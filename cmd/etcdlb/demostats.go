package main

import (
	"sync/atomic"
	"time"
)

// stats counts the demo's calls per policy and backend. The call loops
// only touch atomics; the view takes windows of it.
type stats struct {
	index    map[string]int // backend address -> index; immutable
	policies int

	calls  [][]atomic.Int64 // [policy][backend]
	errs   []atomic.Int64   // [policy]
	latSum []atomic.Int64   // [backend] nanoseconds
	latN   []atomic.Int64   // [backend]

	last counts // the totals at the end of the previous window; view only
}

// counts is a copy of the counters.
type counts struct {
	calls  [][]int64
	errs   []int64
	latSum []int64
	latN   []int64
}

// window is what happened between two takes.
type window struct {
	counts
	dur time.Duration
}

func newStats(backends []*demoBackend, policies int) *stats {
	s := &stats{index: map[string]int{}, policies: policies}
	for i, b := range backends {
		s.index[b.srv.Addr] = i
	}
	s.calls = make([][]atomic.Int64, policies)
	for p := range s.calls {
		s.calls[p] = make([]atomic.Int64, len(backends))
	}
	s.errs = make([]atomic.Int64, policies)
	s.latSum = make([]atomic.Int64, len(backends))
	s.latN = make([]atomic.Int64, len(backends))
	s.last = s.load()
	return s
}

func (s *stats) record(policy int, addr string, err error, lat time.Duration) {
	i, ok := s.index[addr]
	if err != nil || !ok {
		s.errs[policy].Add(1)
		return
	}
	s.calls[policy][i].Add(1)
	s.latSum[i].Add(int64(lat))
	s.latN[i].Add(1)
}

func (s *stats) load() counts {
	c := counts{calls: make([][]int64, s.policies), errs: make([]int64, s.policies),
		latSum: make([]int64, len(s.latSum)), latN: make([]int64, len(s.latN))}
	for p := range s.calls {
		c.calls[p] = make([]int64, len(s.calls[p]))
		for b := range s.calls[p] {
			c.calls[p][b] = s.calls[p][b].Load()
		}
		c.errs[p] = s.errs[p].Load()
	}
	for b := range s.latSum {
		c.latSum[b], c.latN[b] = s.latSum[b].Load(), s.latN[b].Load()
	}
	return c
}

// take returns the window since the previous take.
func (s *stats) take(dur time.Duration) window {
	now := s.load()
	w := window{counts: counts{calls: make([][]int64, s.policies), errs: make([]int64, s.policies),
		latSum: make([]int64, len(now.latSum)), latN: make([]int64, len(now.latN))}, dur: dur}
	for p := range now.calls {
		w.calls[p] = make([]int64, len(now.calls[p]))
		for b := range now.calls[p] {
			w.calls[p][b] = now.calls[p][b] - s.last.calls[p][b]
		}
		w.errs[p] = now.errs[p] - s.last.errs[p]
	}
	for b := range now.latSum {
		w.latSum[b], w.latN[b] = now.latSum[b]-s.last.latSum[b], now.latN[b]-s.last.latN[b]
	}
	s.last = now
	return w
}

// total is policy p's successful calls in the window.
func (w window) total(p int) int64 {
	var n int64
	for _, c := range w.calls[p] {
		n += c
	}
	return n
}

// share is backend b's share of policy p's successful calls, 0..1.
func (w window) share(p, b int) float64 {
	t := w.total(p)
	if t == 0 {
		return 0
	}
	return float64(w.calls[p][b]) / float64(t)
}

// rate is policy p's successful calls per second in the window.
func (w window) rate(p int) float64 {
	if w.dur <= 0 {
		return 0
	}
	return float64(w.total(p)) / w.dur.Seconds()
}

// latency is backend b's mean latency in the window, 0 without calls.
func (w window) latency(b int) time.Duration {
	if w.latN[b] == 0 {
		return 0
	}
	return time.Duration(w.latSum[b] / w.latN[b])
}
