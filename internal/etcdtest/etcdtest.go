// Package etcdtest holds what the tests of the resolver and the registry
// share: a real embedded etcd with a client, a resolver.ClientConn that
// records what a resolver sends, a resolver and a registration that clean
// up after the test, a logger through t, and bounded waits.
package etcdtest

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/resolver"

	"github.com/etcdlb/etcdlb/endpoint"
	"github.com/etcdlb/etcdlb/internal/embedetcd"
	"github.com/etcdlb/etcdlb/internal/poll"
	"github.com/etcdlb/etcdlb/registry"
	etcdlbresolver "github.com/etcdlb/etcdlb/resolver"
)

// WaitTimeout bounds every wait in the tests.
const WaitTimeout = 20 * time.Second

// Env is one etcd with a client.
type Env struct {
	Etcd *embedetcd.Cluster // nil for an etcd not embedded
	Cli  *clientv3.Client
	Ctx  context.Context
}

// NewEnv starts an embedded etcd, stopped when the test ends.
func NewEnv(t testing.TB) *Env {
	t.Helper()
	c := embedetcd.StartT(t, embedetcd.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return &Env{Etcd: c, Cli: c.ClientT(t), Ctx: ctx}
}

// Put puts key, failing the test on an error.
func (e *Env) Put(t testing.TB, key, val string, opts ...clientv3.OpOption) {
	t.Helper()
	if _, err := e.Cli.Put(e.Ctx, key, val, opts...); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

// PutIgnoreLease puts key keeping its lease, as an operator's in-place edit.
func (e *Env) PutIgnoreLease(t testing.TB, key, val string) {
	t.Helper()
	e.Put(t, key, val, clientv3.WithIgnoreLease())
}

// Del deletes key, failing the test on an error.
func (e *Env) Del(t testing.TB, key string) {
	t.Helper()
	if _, err := e.Cli.Delete(e.Ctx, key); err != nil {
		t.Fatalf("delete %s: %v", key, err)
	}
}

// Warm makes e's etcd client start the goroutines it keeps for its
// whole life (the connection, the lease keep-alive loops, started by its
// first KeepAlive), so that a snapshot taken after it holds them.
func (e *Env) Warm(t testing.TB) {
	t.Helper()
	reg := Register(t, e.Cli, registry.Registration{Service: "warm", Addr: "127.0.0.1:9"})
	if err := reg.Close(); err != nil {
		t.Fatal(err)
	}
}

// Build builds a resolver for etcd:///service on a CC, logging through t
// and with a short backoff; opts come after those.
func Build(t testing.TB, cli *clientv3.Client, service string, opts ...etcdlbresolver.Option) (*CC, resolver.Resolver) {
	t.Helper()
	opts = append([]etcdlbresolver.Option{etcdlbresolver.WithLogger(Logger(t)),
		etcdlbresolver.WithBackoff(20*time.Millisecond, 500*time.Millisecond)}, opts...)
	b := etcdlbresolver.NewBuilder(cli, opts...)
	cc := NewCC()
	r, err := b.Build(resolver.Target{URL: *MustURL("etcd:///" + service)}, cc, resolver.BuildOptions{})
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	t.Cleanup(r.Close)
	return cc, r
}

// Register registers reg, logging through t and with a short backoff, and
// closes it when the test ends.
func Register(t testing.TB, cli *clientv3.Client, reg registry.Registration, opts ...registry.Option) *registry.Registrar {
	t.Helper()
	opts = append([]registry.Option{registry.WithLogger(Logger(t)),
		registry.WithBackoff(20*time.Millisecond, 500*time.Millisecond)}, opts...)
	ctx, cancel := context.WithTimeout(context.Background(), WaitTimeout)
	defer cancel()
	r, err := registry.Register(ctx, cli, reg, opts...)
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// CC is a resolver.ClientConn that records what the resolver sends.
type CC struct {
	resolver.ClientConn // nil; unused methods panic

	mu      sync.Mutex
	states  []resolver.State
	errs    []error
	changed chan struct{} // closed and replaced on every call
}

// NewCC returns an empty CC.
func NewCC() *CC { return &CC{changed: make(chan struct{})} }

func (cc *CC) UpdateState(s resolver.State) error {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	cc.states = append(cc.states, s)
	close(cc.changed)
	cc.changed = make(chan struct{})
	return nil
}

func (cc *CC) ReportError(err error) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	cc.errs = append(cc.errs, err)
	close(cc.changed)
	cc.changed = make(chan struct{})
}

// NumStates returns how many states the resolver sent.
func (cc *CC) NumStates() int {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return len(cc.states)
}

// States returns the states the resolver sent, in order.
func (cc *CC) States() []resolver.State {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return append([]resolver.State(nil), cc.states...)
}

// Errs returns the errors the resolver reported, in order.
func (cc *CC) Errs() []error {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return append([]error(nil), cc.errs...)
}

// WaitFor waits until cond holds for the last state and the errors so far.
func (cc *CC) WaitFor(t testing.TB, what string, cond func(last *resolver.State, errs []error) bool) resolver.State {
	t.Helper()
	deadline := time.After(WaitTimeout)
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
			t.Fatalf("timed out waiting for %s; last state %s", what, Describe(s))
		}
	}
}

// WaitEndpoints waits until the last state is exactly want, in the form of
// Describe.
func (cc *CC) WaitEndpoints(t testing.TB, want string) resolver.State {
	t.Helper()
	return cc.WaitFor(t, want, func(last *resolver.State, _ []error) bool {
		return last != nil && Describe(*last) == want
	})
}

// Describe renders the endpoints of s as "addr/weight/zone ..." in order.
func Describe(s resolver.State) string {
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

// WaitFor polls cond, bounded by WaitTimeout, for state that sends no event.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	if !poll.Until(WaitTimeout, cond) {
		t.Fatalf("timed out waiting for %s; goroutines of etcdlb:\n%s", what, Stacks())
	}
}

// GoroutinesIn reports whether a goroutine has fn on its stack.
func GoroutinesIn(fn string) bool {
	buf := make([]byte, 4<<20)
	return strings.Contains(string(buf[:runtime.Stack(buf, true)]), fn)
}

// Stacks returns the stacks of the goroutines in etcdlb's resolver and
// registry.
func Stacks() string {
	buf := make([]byte, 8<<20)
	var out []string
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if strings.Contains(g, "etcdlb/resolver.(*") || strings.Contains(g, "etcdlb/registry.(*") {
			out = append(out, g)
		}
	}
	return strings.Join(out, "\n\n")
}

// MustURL parses s.
func MustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

// Logger logs through t, so that a failing test shows what was skipped and
// why.
func Logger(t testing.TB) *slog.Logger {
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
