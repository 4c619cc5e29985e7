package resolver_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/serviceconfig"

	"github.com/etcdlb/etcdlb/endpoint"
	"github.com/etcdlb/etcdlb/internal/embedetcd"
	etcdlbresolver "github.com/etcdlb/etcdlb/resolver"
)

// waitTimeout bounds every wait in these tests.
const waitTimeout = 20 * time.Second

// fakeCC is a resolver.ClientConn that records what the resolver sends.
type fakeCC struct {
	resolver.ClientConn // nil; unused methods panic

	mu      sync.Mutex
	states  []resolver.State
	errs    []error
	changed chan struct{} // closed and replaced on every call
}

func newFakeCC() *fakeCC { return &fakeCC{changed: make(chan struct{})} }

func (cc *fakeCC) UpdateState(s resolver.State) error {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	cc.states = append(cc.states, s)
	close(cc.changed)
	cc.changed = make(chan struct{})
	return nil
}

func (cc *fakeCC) ReportError(err error) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	cc.errs = append(cc.errs, err)
	close(cc.changed)
	cc.changed = make(chan struct{})
}

func (cc *fakeCC) ParseServiceConfig(string) *serviceconfig.ParseResult { return nil }

func (cc *fakeCC) numStates() int {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return len(cc.states)
}

// waitFor waits until cond holds for the last state and the errors so far.
func (cc *fakeCC) waitFor(t testing.TB, what string, cond func(last *resolver.State, errs []error) bool) resolver.State {
	t.Helper()
	deadline := time.After(waitTimeout)
	for {
		cc.mu.Lock()
		var last *resolver.State
		if n := len(cc.states); n > 0 {
			last = &cc.states[n-1]
		}
		ok := cond(last, cc.errs)
		ch := cc.changed
		var s resolver.State
		if last != nil {
			s = *last
		}
		cc.mu.Unlock()
		if ok {
			return s
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("timed out waiting for %s; last state %s", what, describe(s))
		}
	}
}

// waitEndpoints waits until the last state is exactly want, in the form of
// describe.
func (cc *fakeCC) waitEndpoints(t testing.TB, want string) resolver.State {
	t.Helper()
	return cc.waitFor(t, want, func(last *resolver.State, _ []error) bool {
		return last != nil && describe(*last) == want
	})
}

// describe renders the endpoints of s as "addr/weight/zone ..." in order.
func describe(s resolver.State) string {
	var b []string
	for _, ep := range s.Endpoints {
		a := endpoint.Get(ep)
		d := fmt.Sprintf("%s/%d/%s", endpoint.Addr(ep), a.Weight, a.Zone)
		for k, v := range a.Metadata {
			d += fmt.Sprintf("/%s=%s", k, v)
		}
		b = append(b, d)
	}
	return strings.Join(b, " ")
}

// env is one embedded etcd with a client.
type env struct {
	etcd *embedetcd.Cluster
	cli  *clientv3.Client
	ctx  context.Context
}

func newEnv(t testing.TB) *env {
	t.Helper()
	c := embedetcd.StartT(t, embedetcd.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return &env{etcd: c, cli: c.ClientT(t), ctx: ctx}
}

func (e *env) put(t testing.TB, key, val string) {
	t.Helper()
	if _, err := e.cli.Put(e.ctx, key, val); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

func (e *env) del(t testing.TB, key string) {
	t.Helper()
	if _, err := e.cli.Delete(e.ctx, key); err != nil {
		t.Fatalf("delete %s: %v", key, err)
	}
}

// build builds a resolver for etcd:///service on a fakeCC.
func build(t testing.TB, cli *clientv3.Client, service string, opts ...etcdlbresolver.Option) (*fakeCC, resolver.Resolver) {
	t.Helper()
	opts = append([]etcdlbresolver.Option{etcdlbresolver.WithLogger(testLogger(t)),
		etcdlbresolver.WithBackoff(20*time.Millisecond, 500*time.Millisecond)}, opts...)
	b := etcdlbresolver.NewBuilder(cli, opts...)
	cc := newFakeCC()
	r, err := b.Build(resolver.Target{URL: *mustURL("etcd:///" + service)}, cc, resolver.BuildOptions{})
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	t.Cleanup(r.Close)
	return cc, r
}

// testLogger logs through t, so that a failing test shows what the resolver
// skipped and why.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

var logMu sync.Mutex

func (w tWriter) Write(p []byte) (int, error) {
	logMu.Lock()
	defer logMu.Unlock()
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}
