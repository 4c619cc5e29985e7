// Package resolver finds a service's instances in etcd for gRPC clients
// (etcd:///<service>) and keeps a server's own registration there.
//
// # Client side
//
//	cli, _ := clientv3.New(clientv3.Config{Endpoints: ...}) // TLS, auth, members: yours
//	conn, err := grpc.NewClient("etcd:///echo",
//		grpc.WithResolvers(resolver.NewBuilder(cli)),
//		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"etcdlb_weighted":{}}]}`),
//		grpc.WithTransportCredentials(insecure.NewCredentials()))
//
// Importing this package registers etcdlb's load-balancing policies too
// (package balancer), so a service config can name them without a blank
// import of their own.
//
// The resolver lists <prefix><service>/ and the service's overrides in one
// read, then watches both from the next revision. Every change becomes one
// UpdateState whose endpoints are sorted by address and carry weight, zone and
// metadata (package endpoint); State.Addresses is filled too. Events that
// arrive together are pushed together. Build never waits for etcd.
//
// A service without instances gets an empty state and a ReportError that
// say so (the state through endpoint.WithNoEndpointsReason, so that even the
// first call of a ClientConn has the reason), so RPCs fail with that message
// instead of hanging. When etcd cannot be reached the error names its
// endpoints and why (e.g. connection refused). A key whose
// value cannot be used is skipped and logged with its key and reason (see
// value.go); the rest of the service is unaffected.
//
// When etcd cannot be reached the last good endpoints stay in use: the
// resolver never pushes an empty set because a read failed. It re-lists and
// re-watches with jittered backoff; a compacted or cancelled watch, a
// ResolveNow (at most once per WithResolveNowInterval) and an etcd that went
// back in time (restored from a backup, or restarted without its data) all
// lead to a fresh list.
//
// # Server side
//
//	reg, err := resolver.Register(ctx, cli, resolver.Registration{
//		Service: "echo", Addr: "10.0.0.7:8080", Weight: 10, Zone: "eu-1a"},
//		resolver.WithTTL(10*time.Second))
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
package resolver
