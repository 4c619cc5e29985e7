// Package load is etcdlb's end-to-end load benchmark: real gRPC backends on
// 127.0.0.1 with a service-time distribution, a concurrency limit and
// failure injection; closed- and open-loop load generators recording into a
// fixed-memory log-bucketed histogram; and scenarios run for every policy,
// etcdlb's and grpc-go's, reported as a markdown table and SVG charts.
package load
