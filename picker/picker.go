// Package picker holds etcdlb's per-call selection algorithms: RoundRobin,
// Weighted and LeastInflight, each an Algorithm that builds immutable
// pickers over the ready endpoints of one moment; and Select, the zone
// preference applied when a picker is built.
//
// A picker is built on every state change and then only read: Pick takes no
// lock, touches no map and allocates nothing. State that must outlive a
// picker (each endpoint's Counters, Done and the algorithm's own State, and
// the Shared feedback of one owner's successive pickers) belongs to the
// caller, usually the balancer, and is passed in.
//
// An Algorithm builds a picker of its own concrete type, rather than
// supplying a next-index method to a picker written once (as grpc-go's
// weighted_round_robin scheduler does): a call through an interface on every
// pick would cost round robin a stack frame and a nanosecond or more of its
// 4-5 ns. What every algorithm shares is written once here instead: asking
// each endpoint's picker once when it is Fixed (fixedResults), attaching the
// endpoint's Done (pickEndpoint), and the cache-line isolation (isolate).
package picker

import (
	"sync/atomic"

	"google.golang.org/grpc/balancer"
)

// Algorithm is one way of choosing among endpoints. Its value holds the
// policy's parameters (LeastInflight's ChoiceCount), never per-call state.
type Algorithm interface {
	// NewPicker returns a picker over eps, which must not be empty. The
	// picker may read eps' Counters and attach their Done; it must not
	// keep eps itself (copy what it needs). s is the feedback shared by
	// its owner's successive pickers; nil when there is none.
	NewPicker(eps []Endpoint, s *Shared) balancer.Picker
}

// Tracks is the per-endpoint state a policy's pickers keep in each
// endpoint's Counters, beyond the picks every picker counts. State of
// other kinds is the policy's own (Endpoint.State).
type Tracks uint8

const (
	// Inflight: picks count the calls in flight, and every pick's result
	// must carry the endpoint's Done (Counters.Done) to end its call.
	Inflight Tracks = 1 << iota
)

// Has reports whether t includes u.
func (t Tracks) Has(u Tracks) bool { return t&u == u }

// Shared is the feedback that one owner's successive pickers share: what
// one picker learnt that the next should be built with. Today it holds
// whether picks from several cores collided on a round-robin counter (see
// sequence): the first collision asks the owner for a new picker, and every
// picker built after it counts on stripes.
type Shared struct {
	contended atomic.Bool
	rebuild   func()
	// report is s.contention, bound once so that a pick does not allocate.
	report func(balancer.DoneInfo)
}

// NewShared returns the feedback of one owner; rebuild, when not nil, is
// called (on the goroutine that ends a call) to ask for a new picker.
func NewShared(rebuild func()) *Shared {
	s := &Shared{rebuild: rebuild}
	s.report = s.contention
	return s
}

// contention is attached as the Done of a pick that found another core
// writing the same counter; it runs when that call ends.
func (s *Shared) contention(balancer.DoneInfo) {
	if s.contended.Load() || s.contended.Swap(true) {
		return
	}
	if s.rebuild != nil {
		s.rebuild()
	}
}

// counting is how s says a round robin or weighted picker should count.
func (s *Shared) counting() counting {
	if s == nil {
		return counting{}
	}
	return counting{striped: s.contended.Load(), contended: s.report}
}

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
	// State is what the algorithm keeps for this endpoint beyond Counters,
	// nil when nothing: the algorithm's own type, made by the owner once
	// per endpoint (in package balancer, by the policy's table entry), so
	// that it outlives pickers. An algorithm converts it to its own type
	// when it builds a picker, never per pick.
	State any
	// Fixed says that Picker returns the same result, whatever the
	// PickInfo, until it is replaced, as pick_first's picker does while
	// READY. When every endpoint is Fixed, every algorithm asks each once,
	// when it builds a picker, and its picks read the results from a dense
	// array instead of calling each child: at 10,000 endpoints, reaching
	// the child's picker is a cache miss that costs a least-inflight pick
	// 10 ns.
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

// Picks returns the picks counted here: those of pickers that count in
// Counters (least-inflight), and those of other pickers added with AddPicks
// (see Picks).
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
