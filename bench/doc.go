// Package bench holds etcdlb's microbenchmarks of the pick path, run side by
// side with grpc-go's own policies through the same fake ClientConn, and
// the short version of the end-to-end load benchmark of package bench/load
// (BenchmarkLoad, BenchmarkLoadScale).
package bench
