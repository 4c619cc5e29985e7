// Package picker holds etcdlb's per-call selection algorithms: round robin,
// weighted round robin and least-inflight, each an immutable snapshot over the
// ready endpoints of one moment, with zone preference applied when it is built.
//
// A picker is built on every state change and then only read: Pick takes no
// lock, touches no map and allocates nothing. State that must outlive a picker
// (in-flight counters, the Done callback) belongs to the caller, usually the
// balancer, and is passed in through Endpoint.
package picker

import (
	"sync/atomic"

	"google.golang.org/grpc/balancer"
)

// Endpoint is what a picker knows of one ready endpoint.
type Endpoint struct {
	// Picker is the endpoint's own picker, usually its pick_first child's.
	Picker balancer.Picker
	// Weight is the endpoint's share of traffic; 0 means drained.
	Weight uint32
	// Zone is the endpoint's failure domain, "" when unknown.
	Zone string
	// Counters count the endpoint's picks and outstanding RPCs. They
	// belong to the caller and outlive the picker. Least-inflight increments
	// both on a pick and reads the RPCs in flight; Done must end the RPC.
	Counters *Counters
	// Done, when set, is attached to every pick of this endpoint. It is made
	// once per endpoint, so that a pick does not allocate a closure.
	Done func(balancer.DoneInfo)
	// Fixed says that Picker returns the same result, whatever the
	// PickInfo, until it is replaced, as pick_first's picker does while
	// READY. When every endpoint is Fixed, a picker asks each once, when it
	// is built, and its picks read the results from a dense array instead of
	// calling each child: at 10,000 endpoints, reaching the child's picker
	// is a cache miss that costs a least-inflight pick 10 ns.
	Fixed bool
}

// Counters are one endpoint's counts of picks and outstanding RPCs, side by
// side so that a least-inflight pick writes one cache line. Their owner
// should keep the Counters of different endpoints close together, in one
// array: a least-inflight pick reads two endpoints' Counters at random, and
// over many endpoints Counters spread around the heap cost a cache miss
// each.
type Counters struct {
	inflight atomic.Int64
	picks    atomic.Uint64
}

// Inflight returns the number of outstanding RPCs.
func (c *Counters) Inflight() int64 { return c.inflight.Load() }

// Picks returns the picks counted here: those of least-inflight pickers,
// and those of other pickers added with AddPicks.
func (c *Counters) Picks() uint64 { return c.picks.Load() }

// AddPicks adds n picks, e.g. a retired picker's (see Picks).
func (c *Counters) AddPicks(n uint64) { c.picks.Add(n) }

// Done marks the end of one RPC. Its method value is a ready-made
// Endpoint.Done.
func (c *Counters) Done(balancer.DoneInfo) { c.inflight.Add(-1) }

func (c *Counters) start() {
	c.inflight.Add(1)
	c.picks.Add(1)
}

// fixedResults returns the endpoints' pick results, each asked once and
// with its Done attached; nil unless every endpoint is Fixed and picks
// without error.
func fixedResults(eps []Endpoint) []balancer.PickResult {
	rs := make([]balancer.PickResult, len(eps))
	for i := range eps {
		if !eps[i].Fixed {
			return nil
		}
		r, err := pickEndpoint(&eps[i], balancer.PickInfo{})
		if err != nil {
			return nil
		}
		rs[i] = r
	}
	return rs
}

// pickEndpoint asks e's own picker and attaches e's Done.
func pickEndpoint(e *Endpoint, info balancer.PickInfo) (balancer.PickResult, error) {
	r, err := e.Picker.Pick(info)
	if err != nil || e.Done == nil {
		return r, err
	}
	if r.Done != nil {
		// pick_first never sets Done; another child policy might. Both must
		// run, at the price of one allocation.
		childDone, ownDone := r.Done, e.Done
		r.Done = func(di balancer.DoneInfo) { childDone(di); ownDone(di) }
		return r, nil
	}
	r.Done = e.Done
	return r, nil
}
