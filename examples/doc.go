// Package examples holds complete programs that use etcdlb against an etcd
// of your own: server registers a gRPC server, client calls it. The Go
// snippets of README.md are excerpts of them (readme_test.go checks it).
package examples
