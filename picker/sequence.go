package picker

import (
	"math/bits"
	"math/rand/v2"
	"runtime"
	"sync/atomic"
	"unsafe"
)

// sequence hands out positions 0..length-1 in a cycle, like a shared
// round-robin counter. While one goroutine picks, it is one counter, as
// grpc-go's round_robin is. Once it sees a second goroutine picking, it
// moves for good to several counters ("stripes") on separate cache lines,
// so that cores picking at the same time do not all write one line: a
// shared counter costs grpc-go's round_robin 3x its serial time when two
// cores pick at once.
//
// Each counter walks the whole cycle from its own starting offset, so every
// counter on its own is an exact round robin; summed over the counters
// (the first one and the stripes), each position's count differs from its
// exact share by at most one per counter, at any time.
type sequence struct {
	// first is the counter used until striped is set. It sits in the
	// picker itself: it needs no pointer to be followed, and only one core
	// writes it while it is in use.
	first   counter
	striped atomic.Bool
	// sampler identifies the goroutine that made the last sampled pick on
	// first (its stackStripe, plus 1: never 0).
	sampler atomic.Uint32
	stripes []stripe // a power of two of them
	length  uint32
	// lengthInverse is 2^64/length rounded up, so that a remainder by
	// length costs two multiplications instead of a division, which takes
	// three times as long (Lemire, Kaser and Kurz, "Faster remainder by
	// direct computation", 2019). It is 0 when length is 1.
	lengthInverse uint64
}

// counter is one exact round robin over the cycle.
type counter struct {
	// n starts at offset, so that the position is n mod length, with no
	// offset to add on the pick path.
	n      atomic.Uint64
	offset uint32
}

type stripe struct {
	counter
	// 128 bytes a stripe: x86 prefetches cache lines in pairs.
	_ [128 - unsafe.Sizeof(counter{})]byte
}

// sampleEvery is how often (in picks, a power of two) the first counter
// checks which goroutine picks: two picks in a row, so that goroutines
// taking turns are seen too. Two goroutines picking at once are seen
// within a few times this many picks.
const sampleEvery = 256

// sampled reports whether the pick that made count n checks its goroutine.
func sampled(n uint64) bool { return n%sampleEvery < 2 }

// init sets s up for a cycle of length positions.
func (s *sequence) init(length int) {
	n := stripeCount()
	s.stripes = make([]stripe, n)
	s.length = uint32(length)
	s.lengthInverse = ^uint64(0)/uint64(length) + 1
	start := rand.Uint32()
	// Spread the starting points over the cycle, so that the counters'
	// partial cycles do not all favour the same positions.
	offset := func(i int) uint32 {
		return uint32((uint64(start) + uint64(i)*uint64(length)/uint64(n+1)) % uint64(length))
	}
	s.first.start(offset(n))
	for i := range s.stripes {
		s.stripes[i].start(offset(i))
	}
}

func (c *counter) start(offset uint32) {
	c.offset = offset
	c.n.Store(uint64(offset))
}

// stripeCount is 32 stripes per processor, a power of two, at most 256.
// Two goroutines whose stacks hash to the same stripe share its counter and
// pick as slowly as on grpc-go's single counter; with S stripes, two
// goroutines collide with probability 1/S (1/8 with the 8 stripes that four
// per processor gave on two cores: a quarter of RunParallel runs measured
// 20-35 ns instead of 5).
func stripeCount() int {
	n := 32 * runtime.GOMAXPROCS(0)
	return min(256, 1<<bits.Len(uint(n-1)))
}

// A pick takes three steps, each small enough to inline (one function
// would not be):
//
//	n := s.count()
//	if sampled(n) {
//		s.sample()
//	}
//	position := s.position(n)

// count counts a pick and returns its counter's new count.
func (s *sequence) count() uint64 {
	if !s.striped.Load() {
		// Until it pays, the stripe's hash is skipped: it costs 1-2 ns on
		// a serial pick, as much again as the rest of the sequence.
		return s.first.n.Add(1)
	}
	return s.stripes[stackStripe()&uint32(len(s.stripes)-1)].n.Add(1)
}

// position returns the position of a count. It is taken from the low 32
// bits of the count, whose remainder is cheaper: every 2^32 picks a counter
// skips to the start of its cycle.
func (s *sequence) position(n uint64) uint32 {
	// uint32(n) mod length, exact for any 32-bit n (see lengthInverse).
	p, _ := bits.Mul64(s.lengthInverse*uint64(uint32(n)), uint64(s.length))
	return uint32(p)
}

// sample notes which goroutine picks. When it is not the one seen last
// time, several goroutines pick, and the sequence moves to its stripes.
// A goroutine whose stack moved looks like another one: that costs the
// serial pick its 1-2 ns, no more.
//
// It runs twice in sampleEvery picks: kept out of line, off the pick's code.
//
//go:noinline
func (s *sequence) sample() {
	if s.striped.Load() {
		return
	}
	id := stackStripe() + 1
	if last := s.sampler.Swap(id); last != 0 && last != id {
		s.striped.Store(true)
	}
}

// stackStripe hashes the address of the calling goroutine's stack. It costs
// a nanosecond, where a random number costs three, and it keeps a goroutine
// on one stripe, so a goroutine picking alone sees an exact round robin.
// Goroutines have separate stacks, so concurrent pickers mostly land on
// different stripes.
func stackStripe() uint32 {
	var b byte
	addr := uint64(uintptr(unsafe.Pointer(&b)))
	// Fibonacci hashing: the top bits of the product mix all of the address.
	return uint32((addr >> 10 * 0x9E3779B97F4A7C15) >> 56) // 8 bits: up to 256 stripes
}

// visits calls visit(position, n) for the positions the counters have
// handed out, n times each, counting whole cycles at once:
// O(stripes × length).
func (s *sequence) visits(visit func(position uint32, n uint64)) {
	s.first.visits(s.length, visit)
	for i := range s.stripes {
		s.stripes[i].visits(s.length, visit)
	}
}

func (c *counter) visits(length uint32, visit func(position uint32, n uint64)) {
	n := c.n.Load() - uint64(c.offset)
	cycles, rest := n/uint64(length), uint32(n%uint64(length))
	for p := range length {
		// Positions offset+1 .. offset+rest, wrapping, got one more.
		extra := uint64(0)
		if d := (p + length - c.offset - 1) % length; d < rest {
			extra = 1
		}
		if c := cycles + extra; c > 0 {
			visit(p, c)
		}
	}
}
