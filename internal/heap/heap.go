// Package heap measures the live heap, for benchmarks that report memory
// per endpoint and tests that check memory stays bounded.
package heap

import "runtime"

// Live is the live heap after a full collection. Two collections, so that
// objects freed by the first one's finalizers are gone too.
func Live() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
