package balancer

import "github.com/etcdlb/etcdlb/picker"

// counterSlab hands out the children's Counters from dense arrays. A
// least-inflight pick reads the counters of two random endpoints: at 10,000
// endpoints, counters inside each child's own allocation lie spread over
// megabytes of heap and cost a cache miss each; packed 16 bytes apart they
// take 160 KB and mostly stay in the core's cache. Measured at 10,000
// endpoints, a pick costs 29 ns with the counters inside the children or
// one to a cache line, 25 ns packed; four endpoints to a line cost nothing
// measurable when two cores pick at once, at 3 or 100 endpoints.
//
// An array lives as long as any of its Counters is used, by a child or by
// an RPC still in flight, so a Counters is never reused. Endpoint churn can
// keep at most countersPerSlab-1 unused Counters (4 KB) alive per live
// endpoint.
type counterSlab struct {
	free []picker.Counters
}

// countersPerSlab Counters make 4 KB, a size class whose objects are
// page-aligned.
const countersPerSlab = 256

func (s *counterSlab) next() *picker.Counters {
	if len(s.free) == 0 {
		s.free = make([]picker.Counters, countersPerSlab)
	}
	c := &s.free[0]
	s.free = s.free[1:]
	return c
}
