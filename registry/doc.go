// Package registry keeps a server's registration in etcd, where package
// resolver finds it, and holds the operator's helpers: the weight
// overrides, List and Services. It only writes what package keyspace
// describes, and never imports the resolver.
//
// # Registration
//
//	reg, err := registry.Register(ctx, cli, registry.Registration{
//		Service: "echo", Addr: "10.0.0.7:8080", Weight: 10, Zone: "eu-1a"},
//		registry.WithTTL(10*time.Second))
//	defer reg.Close() // deletes the key first, then revokes the lease
//
// Register writes <prefix><service>/<addr> under a lease and keeps it alive,
// always draining the keepalive channel. If the lease is lost (expired during
// a partition, revoked, or etcd restarted without its data) it grants a new
// one and writes the key again, forever, with backoff; State tells where it
// stands. SetWeight, SetZone and Drain change the key in place. A zero Weight
// registers the default weight 1; Drained registers weight 0. Register refuses
// an address no client can dial (0.0.0.0, [::], port 0) and a key that another
// registration's lease holds (ErrKeyHeld, naming the lease) unless given
// WithTakeover. Give Register a context with a timeout: it waits for etcd, and
// when the context ends it returns the context's error with the last cause.
// Lease IDs are logged in hex, as etcdctl prints them.
//
// # Operator overrides
//
// An operator's weight lives apart from the registration, in a key with no
// lease: <prefix>_etcdlb/override/<service>/<addr>, value {"weight":N}. It
// outlives the server's lease renewals, re-registrations and restarts, and
// wins over the server's own weight until it is deleted (SetOverride,
// ClearOverride, or etcdctl). It is outside <prefix><service>/, so etcd's
// own naming resolver, which reads that whole prefix, never sees it; the
// service name "_etcdlb" is reserved for it.
//
// Operators may also edit the registered key in place (etcdctl put
// --ignore-lease, or a plain put). A running Registrar sees the edit on its
// watch, copies the new weight into the override key, and writes its own
// value back under its lease (a key taken off the lease would outlive the
// server). Only the weight is kept: edit zone and metadata through the server.
// An in-place edit made while no Registrar runs for the key cannot be told
// from the server's own older value and is not kept: use the override.
package registry

import "github.com/etcdlb/etcdlb/internal/etcdutil"

// PermissionError is etcd's "permission denied" for a request etcdlb made,
// naming the key or prefix, the user and the permission the user lacks.
type PermissionError = etcdutil.PermissionError
