package balancer

import (
	"unsafe"

	"github.com/etcdlb/etcdlb/picker"
)

// counterSlab hands out the children's Counters from arrays of
// countersPerSlab, each on a cache line of its own. A least-inflight pick
// reads the counters of two random endpoints: at 10,000 endpoints, counters
// inside each child's own allocation lie spread over megabytes of heap and
// cost a cache miss each; packed into arrays they take 640 KB and stay in
// the core's cache.
//
// An array lives as long as any of its Counters is used, by a child or by
// an RPC still in flight, so a Counters is never reused. Endpoint churn can
// keep at most countersPerSlab-1 unused lines (4 KB) alive per live
// endpoint.
type counterSlab struct {
	free []counterLine
}

// countersPerSlab lines make 4 KB, a size class whose objects are
// page-aligned, so every line is a whole cache line.
const countersPerSlab = 64

type counterLine struct {
	picker.Counters
	_ [64 - unsafe.Sizeof(picker.Counters{})]byte
}

func (s *counterSlab) next() *picker.Counters {
	if len(s.free) == 0 {
		s.free = make([]counterLine, countersPerSlab)
	}
	c := &s.free[0].Counters
	s.free = s.free[1:]
	return c
}
