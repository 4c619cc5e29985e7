// Package reliability holds etcdlb's fault-injection suite: real etcd
// (embedded, one member or three), real gRPC backends and real
// grpc.ClientConns dialing etcd:///<service> with each policy, under steady
// load from several goroutines, while backends restart, crash, churn, flake
// or hang, etcd goes down or loses its data, and the registry fills with
// garbage. Each test counts the calls sent and failed and the recovery time,
// logs them in one fixed format ("figures scenario=... calls=... failed=...")
// and, with -reliability.report=FILE, appends them to FILE; RELIABILITY.md at
// the repository root quotes the last run and states each guarantee.
//
// The package has no code of its own outside its tests.
package reliability
