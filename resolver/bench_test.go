package resolver_test

import (
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	etcdnaming "go.etcd.io/etcd/client/v3/naming/resolver"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/serviceconfig"

	"github.com/etcdlb/etcdlb/endpoint"
	"github.com/etcdlb/etcdlb/internal/etcdtest"
	"github.com/etcdlb/etcdlb/internal/heap"
	etcdlbresolver "github.com/etcdlb/etcdlb/resolver"
)

// benchCC signals every UpdateState on a channel and keeps only the last.
type benchCC struct {
	resolver.ClientConn
	mu    sync.Mutex
	last  resolver.State
	state chan resolver.State
}

func newBenchCC() *benchCC { return &benchCC{state: make(chan resolver.State, 1024)} }

func (cc *benchCC) UpdateState(s resolver.State) error {
	cc.mu.Lock()
	cc.last = s
	cc.mu.Unlock()
	cc.state <- s
	return nil
}
func (cc *benchCC) ReportError(error)                                    {}
func (cc *benchCC) ParseServiceConfig(string) *serviceconfig.ParseResult { return nil }

// putEndpoints writes n endpoints of service in our format, 128 per txn.
func putEndpoints(b *testing.B, e *etcdtest.Env, service string, n int) {
	b.Helper()
	var ops []clientv3.Op
	flush := func() {
		if _, err := e.Cli.Txn(e.Ctx).Then(ops...).Commit(); err != nil {
			b.Fatal(err)
		}
		ops = ops[:0]
	}
	for i := range n {
		addr := fmt.Sprintf("10.%d.%d.%d:8080", i>>16&255, i>>8&255, i&255)
		ops = append(ops, clientv3.OpPut(service+"/"+addr,
			fmt.Sprintf(`{"addr":%q,"weight":%d,"zone":"zone-%d","metadata":{"version":"v1"}}`, addr, i%10+1, i%3)))
		if len(ops) == 128 {
			flush()
		}
	}
	if len(ops) > 0 {
		flush()
	}
}

// resolveAll builds a resolver and waits for its state with n endpoints.
func resolveAll(b *testing.B, bld resolver.Builder, target resolver.Target, n int) (resolver.Resolver, *benchCC) {
	cc := newBenchCC()
	r, err := bld.Build(target, cc, resolver.BuildOptions{})
	if err != nil {
		b.Fatal(err)
	}
	for s := range cc.state {
		if len(s.Endpoints) == n {
			break
		}
	}
	return r, cc
}

type builderFunc func(*clientv3.Client) resolver.Builder

var resolvers = []struct {
	name  string
	build builderFunc
}{
	{"etcdlb", func(cli *clientv3.Client) resolver.Builder {
		return etcdlbresolver.NewBuilder(cli, etcdlbresolver.WithLogger(nil))
	}},
	{"etcd-naming", func(cli *clientv3.Client) resolver.Builder {
		b, _ := etcdnaming.NewBuilder(cli)
		return b
	}},
}

// BenchmarkInitialResolution10k: from Build to the first UpdateState with
// all 10,000 endpoints, ours and etcd's own resolver on the same keys.
func BenchmarkInitialResolution10k(b *testing.B) {
	const n = 10_000
	e := etcdtest.NewEnv(b)
	putEndpoints(b, e, "big", n)
	target := resolver.Target{URL: *etcdtest.MustURL("etcd:///big")}
	for _, rv := range resolvers {
		b.Run(rv.name, func(b *testing.B) {
			bld := rv.build(e.Cli)
			for b.Loop() {
				r, _ := resolveAll(b, bld, target, n)
				r.Close()
			}
		})
	}
}

// BenchmarkResolverMemory10k reports the heap the resolver holds, with the
// state it pushed, per endpoint of a 10,000-endpoint service.
func BenchmarkResolverMemory10k(b *testing.B) {
	const n = 10_000
	e := etcdtest.NewEnv(b)
	putEndpoints(b, e, "big", n)
	target := resolver.Target{URL: *etcdtest.MustURL("etcd:///big")}
	for _, rv := range resolvers {
		b.Run(rv.name, func(b *testing.B) {
			bld := rv.build(e.Cli)
			var total float64
			for b.Loop() {
				before := heap.Live()
				r, cc := resolveAll(b, bld, target, n)
				total += float64(heap.Live() - before)
				runtime.KeepAlive(cc)
				r.Close()
			}
			b.ReportMetric(total/float64(b.N)/n, "B/endpoint")
		})
	}
}

// BenchmarkPutToUpdate: the latency from an etcd Put of a new weight to the
// UpdateState that carries it, at 10 and 10,000 endpoints; etcd's resolver,
// which has no weights, is timed on a Put of a new key instead.
func BenchmarkPutToUpdate(b *testing.B) {
	for _, n := range []int{10, 10_000} {
		e := etcdtest.NewEnv(b)
		svc := fmt.Sprintf("svc%d", n)
		putEndpoints(b, e, svc, n)
		target := resolver.Target{URL: *etcdtest.MustURL("etcd:///" + svc)}
		for _, rv := range resolvers {
			b.Run(fmt.Sprintf("%s/endpoints=%d", rv.name, n), func(b *testing.B) {
				r, cc := resolveAll(b, rv.build(e.Cli), target, n)
				defer r.Close()
				// Keys added for etcd-naming go, so that the next run (-count)
				// starts from n endpoints again.
				defer e.Cli.Delete(e.Ctx, svc+"/10.200.", clientv3.WithPrefix())
				key, addr := svc+"/10.0.0.1:8080", "10.0.0.1:8080"
				var lat []time.Duration
				i := 0
				for b.Loop() {
					i++
					w := uint32(i%1000 + 1)
					val := fmt.Sprintf(`{"addr":%q,"weight":%d}`, addr, w)
					if rv.name == "etcd-naming" {
						key = fmt.Sprintf("%s/10.200.%d.%d:8080", svc, i>>8&255, i&255)
						val = fmt.Sprintf(`{"addr":"10.200.%d.%d:8080"}`, i>>8&255, i&255)
					}
					start := time.Now()
					if _, err := e.Cli.Put(e.Ctx, key, val); err != nil {
						b.Fatal(err)
					}
					for s := range cc.state {
						if rv.name == "etcd-naming" || hasWeight(s, addr, w) {
							break
						}
					}
					lat = append(lat, time.Since(start))
				}
				slices.Sort(lat)
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
			})
		}
	}
}

func hasWeight(s resolver.State, addr string, w uint32) bool {
	i, ok := slices.BinarySearchFunc(s.Endpoints, addr, func(ep resolver.Endpoint, a string) int {
		return strings.Compare(endpoint.Addr(ep), a)
	})
	return ok && endpoint.Get(s.Endpoints[i]).Weight == w
}
