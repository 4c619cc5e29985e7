// Package bench holds etcdlb's microbenchmarks of the pick path, run side by
// side with grpc-go's own policies through the same fake ClientConn.
package bench
