package reliability_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/etcdlb/etcdlb/internal/embedetcd"
	"github.com/etcdlb/etcdlb/internal/poll"
	"github.com/etcdlb/etcdlb/internal/testserver"
	"github.com/etcdlb/etcdlb/keyspace"
	"github.com/etcdlb/etcdlb/registry"
)

// The helper backend process reads its etcd endpoint from this variable.
const helperEnv = "ETCDLB_RELIABILITY_HELPER_ETCD"

const (
	crashService = "crash"
	crashTTL     = 2 * time.Second
	// crashDelay keeps calls in flight on the backend that is killed.
	crashDelay = 20 * time.Millisecond
	// crashRetryLoad is how many goroutines call through each client with a
	// retry policy, each at most once every crashRetryPace, so that the four
	// clients leave etcd enough of the cores to expire the victim's lease
	// in time.
	crashRetryLoad = 16
	crashRetryPace = 50 * time.Millisecond
)

// TestHelperBackend is not a test: it is the backend process that
// TestCrash starts and kills. It serves until its stdin closes.
func TestHelperBackend(t *testing.T) {
	ep := os.Getenv(helperEnv)
	if ep == "" {
		t.Skip("the backend process of TestCrash")
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{ep}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	s, err := testserver.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	s.SetDelay(crashDelay)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	reg, err := registry.Register(ctx, cli, registry.Registration{Service: crashService, Addr: s.Addr},
		registry.WithTTL(crashTTL))
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	fmt.Printf("helper-addr %s\n", s.Addr)
	io.Copy(io.Discard, os.Stdin) // until the parent goes
}

// TestCrash kills a backend process with SIGKILL under load from a client of
// each policy: only calls in flight on it fail, none made after the kill,
// none at all with WaitForReady and a retry policy, and its key leaves etcd
// within its lease TTL.
func TestCrash(t *testing.T) {
	e := newEnv(t, embedetcd.Options{})
	others := []*backend{e.startBackend(t, crashService, 1, 5*time.Second), e.startBackend(t, crashService, 1, 5*time.Second)}

	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperBackend$", "-test.timeout=3m")
	cmd.Env = append(os.Environ(), helperEnv+"="+e.etcd.Endpoint(0))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := false
	t.Cleanup(func() {
		stdin.Close()
		if !exited {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	addrCh := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "helper-addr "); ok {
				addrCh <- a
			}
		}
	}()
	var victim string
	select {
	case victim = <-addrCh:
	case <-time.After(waitTimeout):
		t.Fatalf("the backend process did not start within %v", waitTimeout)
	}

	cli := e.newClient(t)
	cs := dialAll(t, cli, crashService)
	// What the README recommends for idempotent methods: WaitForReady and a
	// retry policy for UNAVAILABLE in the service config (retryConfig),
	// which retries the calls in flight on the killed backend. Under load
	// from 16 goroutines, none fails.
	for _, p := range clientPolicies {
		c := dial(t, cli, crashService, p, retryConfig(p))
		c.policy += "+retry"
		cs = append(cs, c)
	}
	waitAddrs(t, cs, others[0].Addr, others[1].Addr, victim)
	var ls []*load
	for _, c := range cs {
		if strings.HasSuffix(c.policy, "+retry") {
			ls = append(ls, startPacedLoad(t, c, crashRetryLoad, crashRetryPace, callTimeout))
		} else {
			ls = append(ls, startLoad(t, c, 3, callTimeout))
		}
	}
	// Every client has sent calls to the victim.
	for _, c := range cs {
		sent := func() int64 { _, n := c.track.counts(victim); return n }
		if !poll.Until(waitTimeout, func() bool { return sent() >= 20 }) {
			t.Fatalf("%s sent %d calls to %s", c.policy, sent(), victim)
		}
	}

	key := keyspace.EndpointKey("", crashService, victim)
	get, err := e.cli.Get(e.ctx, key)
	if err != nil || len(get.Kvs) != 1 {
		t.Fatalf("victim's key %s: %v %v", key, get, err)
	}
	wctx, wcancel := context.WithCancel(e.ctx)
	defer wcancel()
	wch := e.cli.Watch(wctx, key, clientv3.WithRev(get.Header.Revision+1))

	// In flight at the kill: attempts on the victim not ended when the
	// signal is sent, and those sent to it until the process is gone.
	type snap struct{ inflight, sent int64 }
	before := make([]snap, len(cs))
	for i, c := range cs {
		before[i].inflight, before[i].sent = c.track.counts(victim)
	}
	killed := time.Now()
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	exited = true
	gone := time.Now()
	bound := make([]int64, len(cs))
	for i, c := range cs {
		_, sent := c.track.counts(victim)
		bound[i] = before[i].inflight + sent - before[i].sent
	}

	// The key goes within the lease's TTL (read when it arrives, before the
	// waits for calls below), calls keep flowing, and clients drop the
	// victim once its lease ends.
	var keyGone time.Duration
	select {
	case wr := <-wch:
		if len(wr.Events) == 0 || wr.Events[0].Type != clientv3.EventTypeDelete {
			t.Fatalf("victim's key: %+v (%v), want its deletion", wr.Events, wr.Err())
		}
		keyGone = time.Since(killed)
	case <-time.After(waitTimeout):
		t.Fatalf("victim's key still in etcd %v after the kill", waitTimeout)
	}
	// A lease ends at most TTL after its last renewal; etcd checks for
	// expired leases twice a second and deletes through raft.
	if limit := 2*crashTTL + time.Second; keyGone > limit {
		t.Errorf("victim's key left etcd %v after the kill, want within its TTL %v (limit %v)", keyGone, crashTTL, limit)
	}
	waitAllMore(t, ls, 300)
	waitHas(t, cs, victim, false)
	waitAllMore(t, ls, 300)

	for i, l := range ls {
		l.stop()
		l.logFailures(t)
		late := l.failuresSince(gone)
		report(t, figures{scenario: "crash", policy: l.c.policy, calls: l.calls.Load(), failed: l.failed.Load(),
			recovery: keyGone, extra: fmt.Sprintf("inflight_at_kill=%d failed_after_kill=%d key_gone_after=%v ttl=%v",
				bound[i], len(late), keyGone.Round(time.Millisecond), crashTTL)})
		if n := l.failed.Load(); n > bound[i] {
			t.Errorf("%s: %d calls failed, more than the %d in flight on the killed backend", l.c.policy, n, bound[i])
		}
		if len(late) > 0 {
			t.Errorf("%s: %d calls made after the killed process was gone failed, e.g. %v", l.c.policy, len(late), late[0].err)
		}
		if n := l.failed.Load(); strings.HasSuffix(l.c.policy, "+retry") && n != 0 {
			t.Errorf("%s: %d of %d calls failed with WaitForReady and a retry policy, want 0", l.c.policy, n, l.calls.Load())
		}
	}
	// Which calls were in flight on the victim is chance; none made after it
	// was gone may fail.
	checkNoWorse(t, ls, gone, false)
}
