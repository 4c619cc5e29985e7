// Package differential compares the failed calls of etcdlb's policies with
// those of grpc-go's round_robin, run on the same resolver and servers in
// the same scenario: where the behaviour should be the same, grpc-go is the
// reference, and no etcdlb policy may fail more calls than it.
package differential

import (
	"errors"
	"fmt"
	"math"
	"sync/atomic"
	"testing"

	"github.com/etcdlb/etcdlb/internal/workers"
)

// Reference is the policy every etcdlb policy is compared with.
const Reference = "round_robin"

// Significance is how often Worse, for failures by chance, calls a policy
// worse that fails at the reference's rate: once in a thousand runs.
const Significance = 0.001

// Result is what one client (one policy) counted in a scenario.
type Result struct {
	Policy        string
	Calls, Failed int64
}

// Count counts one client's calls and failed calls; it is safe for
// concurrent use.
type Count struct {
	policy        string
	calls, failed atomic.Int64
}

// NewCount counts the calls of a client of policy.
func NewCount(policy string) *Count { return &Count{policy: policy} }

// Add counts a call that ended with err.
func (c *Count) Add(err error) {
	c.calls.Add(1)
	if err != nil {
		c.failed.Add(1)
	}
}

// Result is what c counted so far.
func (c *Count) Result() Result {
	return Result{Policy: c.policy, Calls: c.calls.Load(), Failed: c.failed.Load()}
}

// Load makes call over and over on n goroutines, counting each in c and
// logging each failure through t, until stop is called (at the latest when
// t ends).
func (c *Count) Load(t testing.TB, n int, call func() error) (stop func()) {
	stop = workers.Start(n, func() bool {
		err := call()
		c.Add(err)
		if err != nil {
			t.Logf("%s: call failed: %v", c.policy, err)
		}
		return true
	})
	t.Cleanup(stop)
	return stop
}

// Worse reports whether r failed more calls than ref.
//
// Where failures are not chance (chance false), more than ref's count
// scaled to r's calls is worse: any, when ref failed none. Where they are
// (which calls meet a flaky backend), r is worse when the two counts differ
// more than chance explains: were the rates equal, of the failures of both,
// the number that falls to r would be binomial with p = r's share of the
// calls; r is worse when at least r.Failed would fall to it with
// probability below Significance.
func Worse(r, ref Result, chance bool) bool {
	if !chance {
		return float64(r.Failed) > math.Ceil(float64(ref.Failed)*float64(r.Calls)/float64(max(ref.Calls, 1)))
	}
	n := r.Failed + ref.Failed
	p := float64(r.Calls) / float64(max(r.Calls+ref.Calls, 1))
	return binomialTail(n, r.Failed, p) < Significance
}

// binomialTail is P(X >= k) for X binomial with n trials of probability p.
func binomialTail(n, k int64, p float64) float64 {
	if k <= 0 {
		return 1
	}
	if p <= 0 {
		return 0
	}
	if p >= 1 {
		return 1
	}
	lgn, _ := math.Lgamma(float64(n + 1))
	var sum float64
	for i := k; i <= n; i++ {
		lgi, _ := math.Lgamma(float64(i + 1))
		lgr, _ := math.Lgamma(float64(n - i + 1))
		sum += math.Exp(lgn - lgi - lgr + float64(i)*math.Log(p) + float64(n-i)*math.Log1p(-p))
	}
	return sum
}

// Check returns an error naming each policy of rs that did worse than the
// reference's result in rs (see Worse), or nil. rs must hold the
// reference's result.
func Check(rs []Result, chance bool) error {
	var ref *Result
	for i := range rs {
		if rs[i].Policy == Reference {
			ref = &rs[i]
		}
	}
	if ref == nil {
		return fmt.Errorf("differential: no result of %s among %d", Reference, len(rs))
	}
	var errs []error
	for _, r := range rs {
		if r.Policy != Reference && Worse(r, *ref, chance) {
			errs = append(errs, fmt.Errorf("%s failed %d of %d calls, %s %d of %d on the same servers",
				r.Policy, r.Failed, r.Calls, Reference, ref.Failed, ref.Calls))
		}
	}
	return errors.Join(errs...)
}

// CheckCounts is Check of what cs counted.
func CheckCounts(cs []*Count, chance bool) error {
	rs := make([]Result, len(cs))
	for i, c := range cs {
		rs[i] = c.Result()
	}
	return Check(rs, chance)
}

// NoneFailed fails t unless no client of cs failed a call (which also
// means none failed more than the reference), logging each one's counts.
func NoneFailed(t testing.TB, cs []*Count) {
	t.Helper()
	for _, c := range cs {
		r := c.Result()
		t.Logf("%s: %d calls, %d failed", r.Policy, r.Calls, r.Failed)
	}
	if err := CheckCounts(cs, false); err != nil {
		t.Errorf("worse than grpc-go's %s: %v", Reference, err)
	}
	for _, c := range cs {
		if r := c.Result(); r.Failed != 0 {
			t.Errorf("%s: %d of %d calls failed, want 0", r.Policy, r.Failed, r.Calls)
		}
	}
}
