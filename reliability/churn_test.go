package reliability_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/etcdlb/etcdlb/internal/embedetcd"
	"github.com/etcdlb/etcdlb/internal/heap"
)

// Leak tolerances of TestChurn, after the churn is over and everything it
// started has stopped.
const (
	// goroutineSlack: goroutines of etcd and grpc that come and go on
	// their own (timers, lease checks).
	goroutineSlack = 10
	// heapSlack: the embedded etcd in the same process keeps its recent
	// raft entries (every registration and weight change of the churn) in
	// memory; a leak of the ~150 backends the churn goes through (their
	// connections, children, pickers) would show well above this.
	heapSlack = 16 << 20
)

// TestChurn has backends join and leave continuously for 30 s (5 s with
// -short) while their weights change, under load from a client of each
// policy: no call fails (every backend leaves gracefully), and afterwards no
// goroutine, connection or memory is left behind.
func TestChurn(t *testing.T) {
	d := 30 * time.Second
	if testing.Short() {
		d = 5 * time.Second
	}
	e := newEnv(t, embedetcd.Options{})
	const service = "churn"
	stable, addrs := e.startBackends(t, service, 5*time.Second, 1, 2, 3)
	cs := dialAll(t, e.newClient(t), service)
	waitAddrs(t, cs, addrs...)
	// Connect everything, then count with no load running.
	warm := startLoads(t, cs, 1)
	waitAllMore(t, warm, 50)
	for _, l := range warm {
		l.stop()
	}
	g0, c0, h0 := settleGoroutines(-1), establishedConns(t), heap.Live()

	ls := startLoads(t, cs, 3)
	rng := rand.New(rand.NewPCG(7, 7))
	var live []*backend
	joins, leaves, weights := 0, 0, 0
	for end := time.Now().Add(d); time.Now().Before(end); {
		if len(live) < 2 || len(live) < 6 && rng.IntN(2) == 0 {
			live = append(live, e.startBackend(t, service, uint32(1+rng.IntN(5)), 5*time.Second))
			joins++
		} else {
			i := rng.IntN(len(live))
			leave(t, cs, live[i])
			live = append(live[:i], live[i+1:]...)
			leaves++
		}
		all := append(append([]*backend{}, stable...), live...)
		b := all[rng.IntN(len(all))]
		if err := b.reg.SetWeight(e.ctx, uint32(1+rng.IntN(9))); err != nil {
			t.Fatal(err)
		}
		weights++
		waitAllMore(t, ls, 10)
	}
	for _, b := range live {
		leave(t, cs, b)
		leaves++
	}
	waitAddrs(t, cs, addrs...)
	waitAllMore(t, ls, 100)
	for _, l := range ls {
		l.stop()
	}

	g1 := settleGoroutines(g0 + goroutineSlack)
	c1 := establishedConns(t)
	h1 := heap.Live()
	extra := fmt.Sprintf("duration=%v joins=%d leaves=%d weight_changes=%d goroutines=%d->%d conns=%d->%d heap=%.1fMiB->%.1fMiB",
		d, joins, leaves, weights, g0, g1, c0, c1, mib(h0), mib(h1))
	for _, l := range ls {
		l.logFailures(t)
		report(t, figures{scenario: "churn", policy: l.c.policy, calls: l.calls.Load(), failed: l.failed.Load(), extra: extra})
		if n := l.failed.Load(); n != 0 {
			t.Errorf("%s: %d of %d calls failed during the churn", l.c.policy, n, l.calls.Load())
		}
	}
	checkNoWorse(t, ls, time.Time{}, false)
	if g1 > g0+goroutineSlack {
		t.Errorf("%d goroutines after the churn, %d before (slack %d)", g1, g0, goroutineSlack)
		buf := make([]byte, 1<<20)
		t.Logf("goroutines:\n%s", buf[:runtime.Stack(buf, true)])
	}
	if c1 > c0 {
		t.Errorf("%d TCP connections established after the churn, %d before", c1, c0)
	}
	if h1 > h0+heapSlack {
		t.Errorf("heap %.1f MiB after the churn, %.1f MiB before (slack %.0f MiB)", mib(h1), mib(h0), mib(heapSlack))
	}
}

// leave takes b out gracefully: deregister, wait until no client has it,
// drain its calls, stop.
func leave(t *testing.T, cs []*client, b *backend) {
	t.Helper()
	if err := b.reg.Close(); err != nil {
		t.Fatalf("deregister %s: %v", b.Addr, err)
	}
	waitHas(t, cs, b.Addr, false)
	b.GracefulStop()
}

func mib(n uint64) float64 { return float64(n) / (1 << 20) }

// establishedConns counts the process's TCP sockets in state ESTABLISHED
// (both ends of a loopback connection count, as both are ours). It skips the
// test where /proc is missing.
func establishedConns(t *testing.T) int {
	t.Helper()
	inodes := map[string]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fs := strings.Fields(line)
			if len(fs) > 9 && fs[3] == "01" { // TCP_ESTABLISHED
				inodes[fs[9]] = true
			}
		}
	}
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count connections: %v", err)
	}
	n := 0
	for _, fd := range fds {
		l, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		if err != nil {
			continue
		}
		if ino, ok := strings.CutPrefix(l, "socket:["); ok && inodes[strings.TrimSuffix(ino, "]")] {
			n++
		}
	}
	return n
}
