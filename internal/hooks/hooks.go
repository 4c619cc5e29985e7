// Package hooks carries the callbacks through which metrics observe the
// resolver and the registration, so that metrics attach without the resolver
// depending on Prometheus.
package hooks

import "time"

// Resolver observes one resolver. Every field may be nil.
type Resolver struct {
	// Update is called after each UpdateState, with the number of endpoints.
	Update func(service string, endpoints int)
	// Rejected is called once per rejected key value, with the reason.
	Rejected func(service, reason string)
	// WatchRestart is called when a watch ends and the resolver re-lists.
	WatchRestart func(service string)
	// Compacted is called when the watch's revision was compacted.
	Compacted func(service string)
	// Synced is called after each successful list or watch response.
	Synced func(service string, at time.Time)
	// EtcdError is called for every failed etcd request.
	EtcdError func(service string, err error)
}

// Registration observes one registration. Every field may be nil.
type Registration struct {
	// State is called on every state change ("registering", "registered",
	// "closed").
	State func(service, addr, state string)
	// LeaseRenewed is called for every keepalive response.
	LeaseRenewed func(service, addr string)
	// LeaseFailed is called when the lease is lost or cannot be granted.
	LeaseFailed func(service, addr string, err error)
	// Reregistered is called each time the key is written under a new lease
	// after the first.
	Reregistered func(service, addr string)
}
