// Package workers runs a piece of work over and over on several goroutines
// until it is stopped: the concurrent load of tests and benchmark warm-ups.
package workers

import (
	"sync"
	"sync/atomic"
)

// Start calls work over and over on each of n goroutines until the returned
// stop is called, or until work returns false, which ends its goroutine.
// stop waits for every goroutine to return, and may be called more than
// once.
func Start(n int, work func() bool) (stop func()) {
	var stopped atomic.Bool
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for !stopped.Load() && work() {
			}
		})
	}
	return func() {
		stopped.Store(true)
		wg.Wait()
	}
}
