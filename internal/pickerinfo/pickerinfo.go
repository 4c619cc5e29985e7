// Package pickerinfo lets the module's tests and benchmarks outside package
// picker ask what a picker does, without making the question part of
// picker's API. Package picker sets the functions when it is initialised.
package pickerinfo

import "google.golang.org/grpc/balancer"

var (
	// Striped reports whether p counts its picks on stripes.
	Striped func(p balancer.Picker) bool
	// Stripes reports whether p is of a kind that counts on one counter
	// and is rebuilt striped once picks from several cores collide on it
	// (round robin and weighted).
	Stripes func(p balancer.Picker) bool
)
