// Package poll bounds the tests' waits for state that sends no event to
// wait on: a counter, a metric, a goroutine count.
package poll

import "time"

// Interval is how often Until asks again.
const Interval = 5 * time.Millisecond

// Until asks cond every Interval until it holds, and reports whether it did
// within timeout. Callers fail with a message that says what they saw.
func Until(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(Interval)
	}
	return true
}
