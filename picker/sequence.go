package picker

import (
	"math/bits"
	"math/rand/v2"
	"runtime"
	"sync/atomic"
	"unsafe"
)

// sequence hands out positions 0..length-1 in a cycle, like a shared
// round-robin counter, but from several counters ("stripes") on separate
// cache lines, so that cores picking at the same time do not all write one
// line. A shared counter costs grpc-go's round_robin 3x its serial time
// when two cores pick at once.
//
// Each stripe walks the whole cycle from its own starting offset, so every
// stripe on its own is an exact round robin; summed over stripes, each
// position's count differs from its exact share by at most one per stripe,
// at any time.
type sequence struct {
	stripes []stripe // a power of two of them
	length  uint32
}

type stripe struct {
	n      atomic.Uint64
	offset uint32
	// 128 bytes a stripe: x86 prefetches cache lines in pairs.
	_ [116]byte
}

func newSequence(length int) sequence {
	n := stripeCount()
	s := sequence{stripes: make([]stripe, n), length: uint32(length)}
	start := rand.Uint32()
	for i := range s.stripes {
		// Spread the starting points over the cycle, so that the stripes'
		// partial cycles do not all favour the same positions.
		s.stripes[i].offset = uint32((uint64(start) + uint64(i)*uint64(length)/uint64(n)) % uint64(length))
	}
	return s
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

// next returns the next position. The position is taken from the low 32
// bits of the count, whose division is cheaper: every 2^32 picks a stripe
// skips to the start of its cycle.
func (s *sequence) next() uint32 {
	st := &s.stripes[stackStripe()&uint32(len(s.stripes)-1)]
	p := uint32(st.n.Add(1))%s.length + st.offset
	if p >= s.length {
		p -= s.length
	}
	return p
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

// visits calls visit(position, n) for the positions the stripes have handed
// out, n times each, counting whole cycles at once: O(stripes × length).
func (s *sequence) visits(visit func(position uint32, n uint64)) {
	for i := range s.stripes {
		st := &s.stripes[i]
		n := st.n.Load()
		cycles, rest := n/uint64(s.length), uint32(n%uint64(s.length))
		for p := range s.length {
			// Positions offset+1 .. offset+rest, wrapping, got one more.
			extra := uint64(0)
			if d := (p + s.length - st.offset - 1) % s.length; d < rest {
				extra = 1
			}
			if c := cycles + extra; c > 0 {
				visit(p, c)
			}
		}
	}
}
