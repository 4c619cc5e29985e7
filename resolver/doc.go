// Package resolver finds a service's instances in etcd for gRPC clients
// (etcd:///<service>). It only reads etcd: servers register with package
// registry, and both follow the stored format of package keyspace.
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
// package keyspace); the rest of the service is unaffected.
//
// When etcd cannot be reached the last good endpoints stay in use: the
// resolver never pushes an empty set because a read failed. It re-lists and
// re-watches with jittered backoff; a compacted or cancelled watch, a
// ResolveNow (at most once per WithResolveNowInterval) and an etcd that went
// back in time (restored from a backup, or restarted without its data) all
// lead to a fresh list.
//
// The read path is exported as a Watcher (List, then Watch), for tools that
// show what the resolver sees: `etcdlb watch` prints it.
//
// With WithMetrics, the resolver reports to the metrics and hands them to
// the policies through the resolver state (metrics.Attach), which is why
// this package imports package metrics.
package resolver
