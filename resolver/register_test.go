package resolver_test

import (
	"context"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcdlb/etcdlb/internal/poll"
	etcdlbresolver "github.com/etcdlb/etcdlb/resolver"
)

func register(t testing.TB, cli *clientv3.Client, reg etcdlbresolver.Registration, opts ...etcdlbresolver.Option) *etcdlbresolver.Registrar {
	t.Helper()
	opts = append([]etcdlbresolver.Option{etcdlbresolver.WithLogger(testLogger(t)),
		etcdlbresolver.WithBackoff(20*time.Millisecond, 500*time.Millisecond)}, opts...)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	r, err := etcdlbresolver.Register(ctx, cli, reg, opts...)
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func TestRegisterUpdateDeregister(t *testing.T) {
	e := newEnv(t)
	cc, _ := build(t, e.cli, "echo")
	a := register(t, e.cli, etcdlbresolver.Registration{Service: "echo", Addr: "127.0.0.1:1001", Weight: 2, Zone: "a"})
	b := register(t, e.cli, etcdlbresolver.Registration{Service: "echo", Addr: "127.0.0.1:1002", Zone: "b",
		Metadata: map[string]string{"v": "1"}})
	cc.waitEndpoints(t, "127.0.0.1:1001/2/a 127.0.0.1:1002/1/b/v=1")
	if a.State() != etcdlbresolver.Registered || a.Key() != "echo/127.0.0.1:1001" {
		t.Fatalf("state %v key %q", a.State(), a.Key())
	}
	if err := a.SetWeight(e.ctx, 5); err != nil {
		t.Fatal(err)
	}
	cc.waitEndpoints(t, "127.0.0.1:1001/5/a 127.0.0.1:1002/1/b/v=1")
	if err := b.SetZone(e.ctx, "c"); err != nil {
		t.Fatal(err)
	}
	if err := a.Drain(e.ctx); err != nil {
		t.Fatal(err)
	}
	cc.waitEndpoints(t, "127.0.0.1:1001/0/a 127.0.0.1:1002/1/c/v=1")
	if err := a.Deregister(e.ctx); err != nil {
		t.Fatal(err)
	}
	cc.waitEndpoints(t, "127.0.0.1:1002/1/c/v=1")
	if a.State() != etcdlbresolver.Closed {
		t.Errorf("state after Deregister: %v", a.State())
	}
	if err := a.SetWeight(e.ctx, 1); err == nil {
		t.Errorf("SetWeight after Deregister succeeded")
	}
}

func TestRegisterLeaseRevokedComesBack(t *testing.T) { leaseRevokedComesBack(t, newEnv(t)) }

func leaseRevokedComesBack(t *testing.T, e *env) {
	cc, _ := build(t, e.cli, "echo")
	r := register(t, e.cli, etcdlbresolver.Registration{Service: "echo", Addr: "127.0.0.1:1001"},
		etcdlbresolver.WithTTL(time.Second))
	cc.waitEndpoints(t, "127.0.0.1:1001/1/")
	old := r.Lease()
	start := time.Now()
	if _, err := e.cli.Revoke(e.ctx, old); err != nil {
		t.Fatal(err)
	}
	cc.waitEndpoints(t, "")
	cc.waitEndpoints(t, "127.0.0.1:1001/1/")
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("back after %v, want within a few TTLs of 1s", d)
	}
	if r.Lease() == old {
		t.Errorf("still on the revoked lease")
	}
}

// TestRegisterCrashKeyExpires stops a server without deregistering: its
// client goes away, and the key with it within the TTL.
func TestRegisterCrashKeyExpires(t *testing.T) {
	e := newEnv(t)
	crashing, err := e.etcd.Client()
	if err != nil {
		t.Fatal(err)
	}
	defer crashing.Close()
	ctx, cancel := context.WithTimeout(e.ctx, waitTimeout)
	defer cancel()
	r, err := etcdlbresolver.Register(ctx, crashing, etcdlbresolver.Registration{Service: "echo", Addr: "127.0.0.1:1001"},
		etcdlbresolver.WithTTL(2*time.Second), etcdlbresolver.WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	cc, _ := build(t, e.cli, "echo")
	cc.waitEndpoints(t, "127.0.0.1:1001/1/")
	crashing.Close() // keepalives stop; nothing deletes the key
	start := time.Now()
	cc.waitEndpoints(t, "")
	if d := time.Since(start); d > 2*time.Second+time.Second {
		t.Errorf("key gone after %v, want within the 2s TTL", d)
	}
	if r.State() != etcdlbresolver.Closed {
		t.Errorf("state after client closed: %v", r.State())
	}
}

// TestOperatorWeightSurvives edits a registered key in place, as
// `etcdctl put --ignore-lease` does: the weight becomes an override that
// outlives lease loss, re-registration and a restart of the server, and
// wins over the server's own weight until cleared.
func TestOperatorWeightSurvives(t *testing.T) { operatorWeightSurvives(t, newEnv(t)) }

func operatorWeightSurvives(t *testing.T, e *env) {
	cc, _ := build(t, e.cli, "echo")
	reg := etcdlbresolver.Registration{Service: "echo", Addr: "127.0.0.1:1001", Weight: 3, Zone: "a"}
	r := register(t, e.cli, reg, etcdlbresolver.WithTTL(time.Second))
	cc.waitEndpoints(t, "127.0.0.1:1001/3/a")

	e.putIgnoreLease(t, r.Key(), `{"addr":"127.0.0.1:1001","weight":9,"zone":"a"}`)
	cc.waitEndpoints(t, "127.0.0.1:1001/9/a")
	waitOverride(t, e, "echo", "127.0.0.1:1001", 9)

	// Lease lost: re-registered, the operator's weight still wins.
	if _, err := e.cli.Revoke(e.ctx, r.Lease()); err != nil {
		t.Fatal(err)
	}
	cc.waitEndpoints(t, "")
	cc.waitEndpoints(t, "127.0.0.1:1001/9/a")
	// The server's own weight changes: still the operator's.
	if err := r.SetWeight(e.ctx, 4); err != nil {
		t.Fatal(err)
	}
	// Server restart.
	if err := r.Deregister(e.ctx); err != nil {
		t.Fatal(err)
	}
	cc.waitEndpoints(t, "")
	r = register(t, e.cli, reg)
	cc.waitEndpoints(t, "127.0.0.1:1001/9/a")
	// A plain put (taking the key off the lease) is an edit too; the key goes
	// back on the lease so that it still dies with the server.
	e.put(t, r.Key(), `{"addr":"127.0.0.1:1001","weight":6,"zone":"a"}`)
	waitOverride(t, e, "echo", "127.0.0.1:1001", 6)
	cc.waitEndpoints(t, "127.0.0.1:1001/6/a")
	waitFor(t, "key back on the lease", func() bool {
		resp, err := e.cli.Get(e.ctx, r.Key())
		return err == nil && len(resp.Kvs) == 1 && resp.Kvs[0].Lease == int64(r.Lease())
	})
	// Cleared: the server's own weight applies.
	if err := etcdlbresolver.ClearOverride(e.ctx, e.cli, "echo", "127.0.0.1:1001"); err != nil {
		t.Fatal(err)
	}
	cc.waitEndpoints(t, "127.0.0.1:1001/3/a")

	ins, err := etcdlbresolver.List(e.ctx, e.cli, "echo")
	if err != nil || len(ins) != 1 || ins[0].Weight() != 3 || ins[0].HasOverride || ins[0].TTL < 0 || ins[0].Lease != r.Lease() {
		t.Fatalf("List = %+v, %v", ins, err)
	}
}

func TestRegisterGivesUpOnlyWithItsContext(t *testing.T) {
	e := newEnv(t)
	e.etcd.Stop(0)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err := etcdlbresolver.Register(ctx, e.cli, etcdlbresolver.Registration{Service: "echo", Addr: "127.0.0.1:1001"},
		etcdlbresolver.WithLogger(nil), etcdlbresolver.WithRequestTimeout(200*time.Millisecond))
	if err == nil {
		t.Fatal("Register with etcd down succeeded")
	}
	t.Logf("Register: %v", err)
	waitFor(t, "no Registrar goroutine left", func() bool { return !goroutinesIn("(*Registrar)") })
}

// TestRegisterEtcdLostItsData restarts etcd empty: registrations come back
// and the resolver, whose watch revision is now in the future, finds them.
func TestRegisterEtcdLostItsData(t *testing.T) {
	e := newEnv(t)
	// The revision the resolver lists at is well above what the emptied etcd
	// reaches in this test, as in a real cluster; detection relies on it.
	for i := range 20 {
		e.put(t, "other/k", string(rune('a'+i)))
	}
	cc, _ := build(t, e.cli, "echo", etcdlbresolver.WithRevisionCheckForTest(200*time.Millisecond))
	register(t, e.cli, etcdlbresolver.Registration{Service: "echo", Addr: "127.0.0.1:1001"}, etcdlbresolver.WithTTL(time.Second))
	cc.waitEndpoints(t, "127.0.0.1:1001/1/")
	if err := e.etcd.RestartEmpty(0); err != nil {
		t.Fatal(err)
	}
	e.put(t, "echo/127.0.0.1:1002", `{"addr":"127.0.0.1:1002"}`)
	cc.waitEndpoints(t, "127.0.0.1:1001/1/ 127.0.0.1:1002/1/")
}

func (e *env) putIgnoreLease(t testing.TB, key, val string) {
	t.Helper()
	if _, err := e.cli.Put(e.ctx, key, val, clientv3.WithIgnoreLease()); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

func waitOverride(t testing.TB, e *env, service, id string, want uint32) {
	t.Helper()
	waitFor(t, "override", func() bool {
		w, ok, err := etcdlbresolver.GetOverride(e.ctx, e.cli, service, id)
		return err == nil && ok && w == want
	})
}

// waitFor polls cond, bounded by waitTimeout, for state that sends no event.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	if !poll.Until(waitTimeout, cond) {
		t.Fatalf("timed out waiting for %s; goroutines of etcdlb:\n%s", what, etcdlbStacks())
	}
}

// goroutinesIn reports whether a goroutine has fn on its stack.
func goroutinesIn(fn string) bool {
	buf := make([]byte, 4<<20)
	return strings.Contains(string(buf[:runtime.Stack(buf, true)]), fn)
}

// etcdlbStacks returns the stacks of the goroutines in etcdlb's resolver.
func etcdlbStacks() string {
	buf := make([]byte, 8<<20)
	var out []string
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if strings.Contains(g, "etcdlb/resolver.(*") {
			out = append(out, g)
		}
	}
	return strings.Join(out, "\n\n")
}

// TestDataLossHoldsEndpoints restarts etcd empty: the resolver keeps serving
// the endpoints it lost until they re-register, and drops those that do not
// once the grace period is over.
func TestDataLossHoldsEndpoints(t *testing.T) {
	e := newEnv(t)
	for i := range 20 { // the revision the resolver knows is above the emptied etcd's
		e.put(t, "other/k", string(rune('a'+i)))
	}
	holding := newLogSignal(t, "serving them until they re-register")
	cc, _ := build(t, e.cli, "echo",
		etcdlbresolver.WithRevisionCheckForTest(100*time.Millisecond),
		etcdlbresolver.WithDataLossGrace(3*time.Second),
		etcdlbresolver.WithLogger(holding.logger))
	e.put(t, "echo/127.0.0.1:1001", `{"addr":"127.0.0.1:1001"}`)
	e.put(t, "echo/127.0.0.1:1002", `{"addr":"127.0.0.1:1002","weight":2}`)
	both := "127.0.0.1:1001/1/ 127.0.0.1:1002/2/"
	cc.waitEndpoints(t, both)
	before := cc.numStates()

	if err := e.etcd.RestartEmpty(0); err != nil {
		t.Fatal(err)
	}
	holding.wait(t)
	e.put(t, "echo/127.0.0.1:1002", `{"addr":"127.0.0.1:1002","weight":3}`) // 1002 re-registers
	cc.waitEndpoints(t, "127.0.0.1:1002/3/")                                // 1001 dropped after the grace

	cc.mu.Lock()
	defer cc.mu.Unlock()
	for _, s := range cc.states[before : len(cc.states)-1] {
		if d := describe(s); d != both && d != "127.0.0.1:1001/1/ 127.0.0.1:1002/3/" {
			t.Errorf("while held, the resolver pushed %q; want 1001 kept beside 1002", d)
		}
	}
}

// logSignal is a logger that logs through t and closes seen when a message
// containing msg is logged.
type logSignal struct {
	logger *slog.Logger
	seen   chan struct{}
}

func newLogSignal(t testing.TB, msg string) *logSignal {
	s := &logSignal{seen: make(chan struct{})}
	var once sync.Once
	s.logger = slog.New(signalHandler{testLogger(t).Handler(), func(m string) {
		if strings.Contains(m, msg) {
			once.Do(func() { close(s.seen) })
		}
	}})
	return s
}

func (s *logSignal) wait(t testing.TB) {
	t.Helper()
	select {
	case <-s.seen:
	case <-time.After(waitTimeout):
		t.Fatal("timed out waiting for the log message")
	}
}

type signalHandler struct {
	slog.Handler
	on func(msg string)
}

func (h signalHandler) Handle(ctx context.Context, r slog.Record) error {
	h.on(r.Message)
	return h.Handler.Handle(ctx, r)
}

func (h signalHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return signalHandler{h.Handler.WithAttrs(as), h.on}
}

func (h signalHandler) WithGroup(g string) slog.Handler {
	return signalHandler{h.Handler.WithGroup(g), h.on}
}
