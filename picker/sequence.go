package picker

import (
	"math/bits"
	"math/rand/v2"
	"runtime"
	"sync/atomic"
	"unsafe"
)

// sequence hands out positions 0..length-1 in a cycle, as a shared
// round-robin counter does. It counts on one counter or on many:
//
//   - Serial: one counter, in the picker itself, as grpc-go's round_robin
//     has. A pick counts with a compare-and-swap; when that fails, another
//     core wrote the counter at the same moment, and the pick counts with
//     an add instead and reports the contention (see counting), so that
//     the owner builds its next picker striped.
//   - Striped: several counters ("stripes") on cache lines of their own,
//     chosen by a hash of the picking goroutine's stack, so that cores
//     picking at once do not all write one line: a shared counter costs
//     grpc-go's round_robin 3x its serial time when two cores pick at once.
//     The hash and the pointer to the stripes cost a serial pick 1-2 ns.
//
// Each counter walks the whole cycle from its own starting offset, so every
// counter on its own is an exact round robin; summed over the counters,
// each position's count differs from its exact share by at most one per
// counter, at any time.
type sequence struct {
	// single is the counter of a serial sequence. It needs no pointer to be
	// followed, and only one core writes it at a time, or the sequence's
	// owner is told.
	single  counter
	stripes []stripe // a power of two of them; nil when serial
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

// init sets s up for a cycle of length positions, striped or serial.
func (s *sequence) init(length int, striped bool) {
	s.length = uint32(length)
	s.lengthInverse = ^uint64(0)/uint64(length) + 1
	start := rand.Uint32()
	if !striped {
		s.single.start(start % uint32(length))
		return
	}
	n := stripeCount()
	s.stripes = make([]stripe, n)
	// Spread the starting points over the cycle, so that the counters'
	// partial cycles do not all favour the same positions.
	for i := range s.stripes {
		s.stripes[i].start(uint32((uint64(start) + uint64(i)*uint64(length)/uint64(n)) % uint64(length)))
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

// countSerial counts a pick on a serial sequence and returns the new count,
// and whether another core wrote the counter at the same moment.
//
// It calls nothing, and neither does the round-robin pick around it
// (fixedRoundRobin), which therefore runs without a stack frame: 0.4-0.6 ns
// of a 4 ns pick. An add with a check of which goroutine picks, the way
// this was first detected, needs both (the goroutine is known by an address
// on its stack).
func (s *sequence) countSerial() (n uint64, contended bool) {
	n = s.single.n.Load() + 1
	if s.single.n.CompareAndSwap(n-1, n) {
		return n, false
	}
	return s.single.n.Add(1), true
}

// countStriped counts a pick on a striped sequence's stripe for the calling
// goroutine and returns that stripe's new count.
func (s *sequence) countStriped() uint64 {
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
// O(counters × length).
func (s *sequence) visits(visit func(position uint32, n uint64)) {
	if s.stripes == nil {
		s.single.visits(s.length, visit)
	}
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
