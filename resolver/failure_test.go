package resolver_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/resolver"

	"github.com/etcdlb/etcdlb/internal/embedetcd"
	etcdlbresolver "github.com/etcdlb/etcdlb/resolver"
)

// proxy forwards TCP to one etcd member and can cut every connection
// through it, so one client loses etcd while others keep it.
type proxy struct {
	l      net.Listener
	target string

	mu    sync.Mutex
	cut   bool
	conns []net.Conn
}

func startProxy(t testing.TB, target string) *proxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{l: l, target: u.Host}
	go p.serve()
	t.Cleanup(func() { l.Close(); p.setCut(true) })
	return p
}

func (p *proxy) endpoint() string { return "http://" + p.l.Addr().String() }

func (p *proxy) serve() {
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns = append(p.conns, c, up)
		p.mu.Unlock()
		go func() { io.Copy(up, c); up.Close() }()
		go func() { io.Copy(c, up); c.Close() }()
	}
}

// setCut cuts (true) or restores (false) the path to etcd.
func (p *proxy) setCut(cut bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = cut
	if cut {
		for _, c := range p.conns {
			c.Close()
		}
		p.conns = nil
	}
}

func proxiedClient(t testing.TB, p *proxy) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{p.endpoint()}, DialTimeout: 5 * time.Second,
		Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// TestCompactedWhileDisconnected cuts one client off, changes the service
// and compacts past the client's revision: the client re-lists and ends up
// exactly in sync.
func TestCompactedWhileDisconnected(t *testing.T) {
	e := newEnv(t)
	p := startProxy(t, e.etcd.Endpoint(0))
	compactions := make(chan struct{}, 10)
	cc, _ := build(t, proxiedClient(t, p), "echo", etcdlbresolver.WithCompactedHookForTest(func() { compactions <- struct{}{} }))
	for i := 1; i <= 4; i++ {
		e.put(t, addrKey(i), addrValue(i, 1))
	}
	cc.waitEndpoints(t, "10.0.0.1:80/1/ 10.0.0.2:80/1/ 10.0.0.3:80/1/ 10.0.0.4:80/1/")

	p.setCut(true)
	e.del(t, addrKey(2))                  // removed
	e.put(t, addrKey(3), addrValue(3, 7)) // changed
	e.put(t, addrKey(5), addrValue(5, 1)) // added
	e.del(t, addrKey(4))
	e.put(t, addrKey(4), addrValue(4, 2)) // removed and back
	resp, err := e.cli.Get(e.ctx, "any")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.cli.Compact(e.ctx, resp.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	p.setCut(false)
	cc.waitEndpoints(t, "10.0.0.1:80/1/ 10.0.0.3:80/7/ 10.0.0.4:80/2/ 10.0.0.5:80/1/")
	select {
	case <-compactions:
	default:
		t.Errorf("in sync without seeing the compaction")
	}
}

// TestCutOffKeepsLastEndpoints: while the client cannot reach etcd it keeps
// its endpoints (no empty update), and what was written meanwhile arrives.
func TestCutOffKeepsLastEndpoints(t *testing.T) {
	e := newEnv(t)
	p := startProxy(t, e.etcd.Endpoint(0))
	cc, _ := build(t, proxiedClient(t, p), "echo", etcdlbresolver.WithRequestTimeout(500*time.Millisecond))
	e.put(t, addrKey(1), addrValue(1, 1))
	cc.waitEndpoints(t, "10.0.0.1:80/1/")
	n := cc.numStates()
	p.setCut(true)
	e.put(t, addrKey(2), addrValue(2, 1))
	time.Sleep(2 * time.Second) // let the cut-off client fail and retry a few times
	if got := cc.numStates(); got != n {
		t.Fatalf("%d updates while cut off", got-n)
	}
	p.setCut(false)
	cc.waitEndpoints(t, "10.0.0.1:80/1/ 10.0.0.2:80/1/")
}

// TestBuildWithEtcdDown: Build returns at once; the first state comes when
// etcd does, and RPCs meanwhile learn why they wait.
func TestBuildWithEtcdDown(t *testing.T) {
	e := newEnv(t)
	e.put(t, addrKey(1), addrValue(1, 1))
	e.etcd.Stop(0)
	start := time.Now()
	cc, _ := build(t, e.cli, "echo", etcdlbresolver.WithRequestTimeout(300*time.Millisecond))
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("Build took %v", d)
	}
	cc.waitFor(t, "an error", func(last *resolver.State, errs []error) bool { return len(errs) > 0 })
	if cc.numStates() != 0 {
		t.Fatal("a state pushed while etcd is down")
	}
	if err := e.etcd.Restart(0); err != nil {
		t.Fatal(err)
	}
	cc.waitEndpoints(t, "10.0.0.1:80/1/")
}

// TestClusterMemberStopped stops the member the clients talk to, in a
// three-member cluster: discovery and registration carry on.
func TestClusterMemberStopped(t *testing.T) {
	c := embedetcd.StartT(t, embedetcd.Options{Members: 3})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// Both clients know every member but start on member 0.
	cfg := c.ClientConfig()
	cfg.Endpoints = []string{c.Endpoint(0), c.Endpoint(1), c.Endpoint(2)}
	cli, err := clientv3.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	regCli, err := clientv3.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer regCli.Close()
	writer := c.ClientT(t)

	cc, _ := build(t, cli, "echo")
	reg := register(t, regCli, etcdlbresolver.Registration{Service: "echo", Addr: "10.0.0.1:80"},
		etcdlbresolver.WithTTL(2*time.Second))
	cc.waitEndpoints(t, "10.0.0.1:80/1/")

	// The clients balance over all members, and their watch streams live on
	// one of them: stopping each in turn stops the one they use.
	lease := reg.Lease()
	for victim := range 3 {
		t.Logf("stopping member %d", victim)
		c.Stop(victim)
		if err := reg.SetWeight(ctx, uint32(victim+5)); err != nil {
			t.Fatal(err)
		}
		if _, err := writer.Put(ctx, addrKey(2), addrValue(2, victim+1)); err != nil {
			t.Fatal(err)
		}
		cc.waitEndpoints(t, fmt.Sprintf("10.0.0.1:80/%d/ 10.0.0.2:80/%d/", victim+5, victim+1))
		if err := c.Restart(victim); err != nil {
			t.Fatal(err)
		}
	}
	// Several TTLs passed, and the registration never lost its lease.
	if reg.State() != etcdlbresolver.Registered || reg.Lease() != lease {
		t.Errorf("registration %v on lease %x, started on %x", reg.State(), reg.Lease(), lease)
	}
}

func addrKey(i int) string { return fmt.Sprintf("echo/10.0.0.%d:80", i) }

func addrValue(i, w int) string { return fmt.Sprintf(`{"addr":"10.0.0.%d:80","weight":%d}`, i, w) }
