package picker

import (
	"fmt"
	"testing"

	"google.golang.org/grpc/balancer"
)

// BenchmarkLeastInflight measures a least-inflight Pick and its Done alone,
// on one goroutine, with equal weights and with weights 1..4 cycling, for
// a scan of every endpoint (n=2) and for sampled pairs. bench/ measures it
// through the balancer, against grpc-go's.
func BenchmarkLeastInflight(b *testing.B) {
	for _, weighted := range []bool{false, true} {
		for _, n := range []int{2, 3, 100, 10000} {
			b.Run(fmt.Sprintf("weighted=%v/n=%d", weighted, n), func(b *testing.B) {
				weights := make([]uint32, n)
				for i := range weights {
					weights[i] = 1
					if weighted {
						weights[i] = uint32(i%4 + 1)
					}
				}
				p := newLeastInflight(endpoints(weights...), 2)
				b.ReportAllocs()
				for b.Loop() {
					r, _ := p.Pick(balancer.PickInfo{})
					r.Done(balancer.DoneInfo{})
				}
			})
		}
	}
}
