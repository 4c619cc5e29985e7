// Package differential compares the failed calls of etcdlb's policies with
// those of grpc-go's round_robin, run on the same resolver and servers in
// the same scenario: where the behaviour should be the same, grpc-go is the
// reference, and no etcdlb policy may fail more calls than it.
package differential

import (
	"errors"
	"fmt"
	"math"
)

// Reference is the policy every etcdlb policy is compared with.
const Reference = "round_robin"

// Result is what one client (one policy) counted in a scenario.
type Result struct {
	Policy        string
	Calls, Failed int64
}

// Allowed is how many of calls a policy may fail when the reference failed
// refFailed of refCalls: as many at the reference's rate, plus sigmas
// standard deviations of that count (Poisson, at least 1), for scenarios
// whose failures are chance (calls in flight on a killed backend). With
// sigmas 0 it is the reference's rate alone, so none when the reference
// failed none.
func Allowed(calls, refCalls, refFailed int64, sigmas float64) int64 {
	expected := float64(refFailed) * float64(calls) / float64(max(refCalls, 1))
	if sigmas == 0 {
		return int64(math.Ceil(expected))
	}
	return int64(math.Ceil(expected + sigmas*math.Sqrt(max(expected, 1))))
}

// Check returns an error naming each policy of rs that failed more calls
// than the reference's result in rs allows (see Allowed), or nil. rs must
// hold the reference's result.
func Check(rs []Result, sigmas float64) error {
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
		if r.Policy == Reference {
			continue
		}
		if allowed := Allowed(r.Calls, ref.Calls, ref.Failed, sigmas); r.Failed > allowed {
			errs = append(errs, fmt.Errorf("%s failed %d of %d calls, %s %d of %d on the same servers: at most %d allowed",
				r.Policy, r.Failed, r.Calls, Reference, ref.Failed, ref.Calls, allowed))
		}
	}
	return errors.Join(errs...)
}
