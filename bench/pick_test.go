package bench

import (
	"flag"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/etcdlb/etcdlb/internal/heap"
)

var (
	readyTimeout = flag.Duration("ready-timeout", 5*time.Second,
		"how long BenchmarkReady waits for a policy to be READY over all endpoints (-short: at most 2s)")
	grpc10k = flag.Bool("grpc10k", false,
		"BenchmarkPick: also run grpc-go's endpointsharding policies at 10,000 endpoints, which take 20-70 s each to become READY")
	setupTimeout = flag.Duration("setup-timeout", 5*time.Minute,
		"how long BenchmarkPick waits for a policy to be READY over all endpoints before it fails")
)

// sizes are the numbers of endpoints the pick path is measured at.
var sizes = []int{3, 100, 1000, 10000}

// BenchmarkPick measures one Pick plus its Done, at every size, serially and
// with every core picking at once, for etcdlb's policies and grpc-go's.
// The policy is built once per size and shared by the two modes.
//
// grpc-go's endpointsharding-based policies take 20-70 s each to become
// READY over 10,000 endpoints, so they run at that size only with -grpc10k.
func BenchmarkPick(b *testing.B) {
	for _, pc := range policies {
		b.Run("policy="+pc.label(), func(b *testing.B) {
			for _, n := range sizes {
				b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
					if pc.grpc && n >= 10000 && !*grpc10k {
						b.Skip("grpc-go's policies take 20-70 s each to become READY over 10,000 endpoints; run with -grpc10k")
					}
					get := sync.OnceValues(func() (*setup, error) { return newSetup(pc, n, *setupTimeout) })
					defer func() {
						if s, err := get(); err == nil {
							s.close()
						}
					}()
					b.Run("mode=serial", func(b *testing.B) {
						s, err := get()
						if err != nil {
							b.Fatal(err)
						}
						p, scs := s.picker, s.h.subConns
						b.ReportAllocs()
						for b.Loop() {
							if err := pickDone(p, scs); err != nil {
								b.Fatal(err)
							}
						}
					})
					b.Run("mode=parallel", func(b *testing.B) {
						s, err := get()
						if err != nil {
							b.Fatal(err)
						}
						p, err := s.parallelPicker(10 * time.Second)
						if err != nil {
							b.Fatal(err)
						}
						scs := s.h.subConns
						b.ReportAllocs()
						var failed atomic.Pointer[error]
						b.RunParallel(func(pb *testing.PB) {
							for pb.Next() {
								if err := pickDone(p, scs); err != nil {
									e := err // escapes to the heap only on failure
									failed.Store(&e)
									return
								}
							}
						})
						if err := failed.Load(); err != nil {
							b.Fatal(*err)
						}
					})
				})
			}
		})
	}
}

// BenchmarkReady measures, for one policy over n endpoints, the time from
// the first resolver update (UpdateClientConnState) to a READY picker that
// covers every endpoint, every SubConn having reported READY ("ms-to-ready"),
// and the heap the policy and its picker then hold per endpoint
// ("B/endpoint", net of the fake SubConns themselves).
//
// A policy still not READY after -ready-timeout reports the timeout as its
// time and "timeouts" 1: its real time is longer.
func BenchmarkReady(b *testing.B) {
	timeout := *readyTimeout
	if testing.Short() {
		timeout = min(timeout, 2*time.Second)
	}
	fake := map[int]float64{}
	for _, pc := range policies {
		if pc.single {
			continue // pick_first connects to one endpoint only
		}
		b.Run("policy="+pc.label(), func(b *testing.B) {
			for _, n := range []int{1000, 10000} {
				b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
					if _, ok := fake[n]; !ok {
						fake[n] = fakeSubConnBytes(n)
						b.Logf("the fake SubConns hold %.0f B/endpoint, not counted", fake[n])
					}
					var total time.Duration
					var bytes float64
					var timeouts int
					for range b.N {
						elapsed, perEndpoint, err := measureReady(pc, n, timeout)
						switch {
						case err == errTimeout:
							timeouts++
							b.Logf("%s, n=%d: not READY after %v (> timeout)", pc.name, n, timeout)
						case err != nil:
							b.Fatal(err)
						}
						total += elapsed
						bytes += perEndpoint - fake[n]
					}
					b.ReportMetric(0, "ns/op")
					b.ReportMetric(total.Seconds()*1000/float64(b.N), "ms-to-ready")
					if timeouts > 0 {
						// The heap of a policy still on its way to READY
						// is not comparable; report the timeouts instead.
						b.ReportMetric(float64(timeouts)/float64(b.N), "timeouts")
					} else {
						b.ReportMetric(bytes/float64(b.N), "B/endpoint")
					}
				})
			}
		})
	}
}

// measureReady builds pc over n endpoints and returns how long it took to
// become READY over all of them (the timeout if it did not), and the heap
// it then holds per endpoint, fake SubConns included.
func measureReady(pc policyCase, n int, timeout time.Duration) (time.Duration, float64, error) {
	h := newHarness(pc, n)
	defer h.close()
	before := heap.Live()
	cfg, err := h.build()
	if err != nil {
		return 0, 0, err
	}
	start := time.Now()
	if err := h.update(cfg); err != nil {
		return 0, 0, fmt.Errorf("%s: UpdateClientConnState: %v", pc.name, err)
	}
	_, at, err := h.waitReady(start.Add(timeout))
	elapsed := at.Sub(start)
	if err == errTimeout {
		elapsed = timeout
	} else if err != nil {
		return 0, 0, err
	}
	// The heap is measured with the policy closed to updates, so that
	// SubConn updates still queued (after a timeout) do not change it.
	h.mu.Lock()
	after := heap.Live()
	h.mu.Unlock()
	runtime.KeepAlive(h)
	return elapsed, float64(after-before) / float64(n), err
}

// BenchmarkSharedCounter is the reference for the parallel figures: one
// atomic add on a counter that every core shares, which is what a round
// robin over a single counter costs at the least.
func BenchmarkSharedCounter(b *testing.B) {
	var c atomic.Uint64
	b.Run("mode=serial", func(b *testing.B) {
		for b.Loop() {
			c.Add(1)
		}
	})
	b.Run("mode=parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				c.Add(1)
			}
		})
	})
}

// TestHarness runs every policy over three endpoints through the harness:
// it must become READY with a picker that covers them all, and pick and end
// RPCs without error.
func TestHarness(t *testing.T) {
	for _, pc := range policies {
		t.Run(pc.label(), func(t *testing.T) {
			t.Parallel()
			h := newHarness(pc, 3)
			defer h.close()
			cfg, err := h.build()
			if err != nil {
				t.Fatal(err)
			}
			if err := h.update(cfg); err != nil {
				t.Fatalf("UpdateClientConnState: %v", err)
			}
			p, _, err := h.waitReady(time.Now().Add(time.Minute))
			if err != nil {
				t.Fatalf("no READY picker covering all endpoints: %v", err)
			}
			for range 100 {
				if err := pickDone(p, h.subConns); err != nil {
					t.Fatalf("Pick: %v", err)
				}
				r, err := p.Pick(pickInfo)
				if err != nil {
					t.Fatalf("Pick: %v", err)
				}
				sc := r.SubConn.(*subConn)
				if got := indexOf(sc, h.subConns); got != sc.idx {
					t.Fatalf("indexOf(SubConn of endpoint %d) = %d", sc.idx, got)
				}
				if r.Done != nil {
					r.Done(doneInfos[sc.idx%4])
				}
			}
			if got := h.NewSubConnCount(); pc.single && got != 1 || !pc.single && got != 3 {
				t.Errorf("%d SubConns created, want %d", got, h.covers())
			}
		})
	}
}
