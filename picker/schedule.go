package picker

// maxScheduleLength bounds the memory of a weighted schedule. Weights whose
// reduced sum is larger are scaled down to fit, which bounds the error of an
// endpoint's share by about 1/maxScheduleLength of the total.
func maxScheduleLength(n int) int { return max(1<<16, 16*n) }

// schedule returns the order in which a weighted picker visits the
// endpoints in one cycle: endpoint i appears in proportion to weights[i],
// and its appearances are spread evenly over the cycle, so picks interleave
// rather than arrive in bursts. It returns nil when all weights are equal,
// where plain round robin is the same schedule and needs no table. It costs
// O(L+N) for a cycle of length L.
func schedule(weights []uint32) []uint32 {
	counts := slotCounts(weights)
	if counts == nil {
		return nil
	}
	ids := make([]uint32, len(counts))
	for i := range ids {
		ids[i] = uint32(i)
	}
	return interleave(counts, ids)
}

// interleave returns a cycle in which ids[i] appears counts[i] times.
//
// An endpoint with a quarter of the cycle or more is placed against the rest
// as a whole, whose slots are spread evenly between its runs; the rest is
// interleaved the same way. Each level leaves at most three quarters, so the
// recursion is shallow and the total work O(L). This keeps the heaviest
// endpoint's longest run within ceil(heaviest/rest)+1, which the tests check
// on random weights.
//
// Otherwise each appearance goes to its ideal position in the cycle, and a
// counting sort on the positions makes the order. Endpoints with equal counts
// are staggered, as if they were one endpoint whose appearances are dealt
// among them in turn, so that they do not all land on the same positions.
func interleave(counts []uint64, ids []uint32) []uint32 {
	var length uint64
	heaviest := 0
	for i, k := range counts {
		length += k
		if k > counts[heaviest] {
			heaviest = i
		}
	}
	if k := counts[heaviest]; len(counts) > 1 && 4*k >= length {
		restCounts := append(append([]uint64(nil), counts[:heaviest]...), counts[heaviest+1:]...)
		restIDs := append(append([]uint32(nil), ids[:heaviest]...), ids[heaviest+1:]...)
		return spread(ids[heaviest], interleave(restCounts, restIDs), length)
	}

	// Endpoints with equal counts form a group; member m of g gets phase
	// (m+1/2)/g. slot(i, j) is the ideal position of appearance j of i.
	groupSize := map[uint64]uint64{}
	member := make([]uint64, len(counts))
	for i, k := range counts {
		member[i] = groupSize[k]
		groupSize[k]++
	}
	slot := func(i int, j uint64) uint64 {
		g := groupSize[counts[i]]
		return (2*(j*g+member[i]) + 1) * length / (2 * counts[i] * g)
	}

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
			order[starts[p]] = ids[i]
			starts[p]++
		}
	}
	return order
}

// spread returns a cycle of length in which the entries of rest are evenly
// spaced and id fills every other position.
func spread(id uint32, rest []uint32, length uint64) []uint32 {
	order := make([]uint32, length)
	n := uint64(len(rest))
	next := uint64(0) // the next entry of rest to place
	for p := range length {
		if next < n && p == (2*next+1)*length/(2*n) {
			order[p] = rest[next]
			next++
		} else {
			order[p] = id
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
