package picker

// maxScheduleLength bounds the memory of a weighted schedule. Weights whose
// reduced sum is larger are scaled down to fit, which bounds the error of an
// endpoint's share by about 1/maxScheduleLength of the total.
func maxScheduleLength(n int) int { return max(1<<16, 16*n) }

// schedule returns the order in which a weighted picker visits the
// endpoints in one cycle: endpoint i appears in proportion to weights[i],
// and its appearances are spread evenly over the cycle, so picks interleave
// rather than arrive in bursts. It returns nil when all weights are equal,
// where plain round robin is the same schedule and needs no table.
//
// Each appearance j of endpoint i (of k) is placed at its ideal position
// (j+1/2)*L/k in a cycle of length L, and a counting sort on those positions
// makes the schedule in O(L+N).
func schedule(weights []uint32) []uint32 {
	counts := slotCounts(weights)
	if counts == nil {
		return nil
	}
	var length uint64
	for _, k := range counts {
		length += k
	}
	// slot(i, j) is the ideal position of appearance j of endpoint i.
	slot := func(i int, j uint64) uint64 { return (2*j + 1) * length / (2 * counts[i]) }

	// Counting sort: starts[p] is where position p's entries begin.
	starts := make([]uint32, length+1)
	for i, k := range counts {
		for j := range k {
			starts[slot(i, j)+1]++
		}
	}
	for p := 1; p < len(starts); p++ {
		starts[p] += starts[p-1]
	}
	order := make([]uint32, length)
	for i, k := range counts {
		for j := range k {
			p := slot(i, j)
			order[starts[p]] = uint32(i)
			starts[p]++
		}
	}
	return order
}

// slotCounts returns how many appearances each endpoint gets in one cycle:
// the weights divided by their greatest common divisor, or scaled down when
// their sum exceeds maxScheduleLength (every positive weight keeps at least
// one). It returns nil when all weights are equal. Zero weights get none.
func slotCounts(weights []uint32) []uint64 {
	var g, sum uint64
	equal := true
	for _, w := range weights {
		g = gcd(g, uint64(w))
		sum += uint64(w)
		equal = equal && w == weights[0]
	}
	if equal || sum == 0 {
		return nil
	}
	counts := make([]uint64, len(weights))
	limit := uint64(maxScheduleLength(len(weights)))
	for i, w := range weights {
		switch {
		case sum/g <= limit:
			counts[i] = uint64(w) / g
		case w > 0:
			counts[i] = max(1, (uint64(w)*limit+sum/2)/sum)
		}
	}
	return counts
}

func gcd(a, b uint64) uint64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
