package endpoint

import "google.golang.org/grpc/resolver"

// reason is the value stored under reasonKey.
type reason struct{ err error }

// Equal lets resolver.Attributes compare two values.
func (r reason) Equal(o any) bool {
	or, ok := o.(reason)
	return ok && or.err.Error() == r.err.Error()
}

type reasonKey struct{}

// WithNoEndpointsReason returns s, a state with no endpoints, carrying why.
// A resolver's ReportError reaches the policy apart from the state, and
// grpc-go drops it while the policy is not yet built: the first calls of a
// ClientConn would fail without the reason. The policies read it with
// NoEndpointsReason; a resolver still reports the error for other policies.
func WithNoEndpointsReason(s resolver.State, err error) resolver.State {
	s.Attributes = s.Attributes.WithValue(reasonKey{}, reason{err})
	return s
}

// NoEndpointsReason returns the reason WithNoEndpointsReason set, or nil.
func NoEndpointsReason(s resolver.State) error {
	r, _ := s.Attributes.Value(reasonKey{}).(reason)
	return r.err
}
