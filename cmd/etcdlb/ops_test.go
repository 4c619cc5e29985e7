package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/peer"

	_ "github.com/etcdlb/etcdlb/balancer"
	"github.com/etcdlb/etcdlb/internal/embedetcd"
	"github.com/etcdlb/etcdlb/internal/testserver"
	"github.com/etcdlb/etcdlb/keyspace"
	"github.com/etcdlb/etcdlb/registry"
	"github.com/etcdlb/etcdlb/resolver"
)

// fixture is an embedded etcd with service "echo": two registered
// backends and one key the resolver rejects.
type fixture struct {
	etcd  *embedetcd.Cluster
	cli   *clientv3.Client
	ep    string // --endpoints=...
	srvs  []*testserver.Server
	addrs []string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{etcd: embedetcd.StartT(t, embedetcd.Options{})}
	f.cli = f.etcd.ClientT(t)
	f.ep = "--endpoints=" + strings.Join(f.etcd.Endpoints(), ",")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i, zone := range []string{"a", "b"} {
		s, err := testserver.Start()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Stop)
		reg, err := registry.Register(ctx, f.cli, registry.Registration{
			Service: "echo", Addr: s.Addr, Weight: 1, Zone: zone, Metadata: map[string]string{"n": fmt.Sprint(i)},
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { reg.Close() })
		f.srvs = append(f.srvs, s)
		f.addrs = append(f.addrs, s.Addr)
	}
	if _, err := f.cli.Put(ctx, "echo/bad", "{"); err != nil {
		t.Fatal(err)
	}
	return f
}

// run runs etcdlb as expect does.
func (f *fixture) run(t *testing.T, code int, want []string, args ...string) result {
	t.Helper()
	return expect(t, nil, code, want, args...)
}

func (f *fixture) override(t *testing.T, addr string) (uint32, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	w, ok, err := registry.GetOverride(ctx, f.cli, "echo", addr)
	if err != nil {
		t.Fatal(err)
	}
	return w, ok
}

func TestOperatorCommands(t *testing.T) {
	f := newFixture(t)
	a0, a1 := f.addrs[0], f.addrs[1]

	f.run(t, 0, []string{"SERVICE", a0, a1, "ZONE", "n=0", "rejected: malformed_json"}, "ls", "echo", f.ep)
	f.run(t, 0, []string{"echo", a0}, "ls", f.ep)
	f.run(t, 1, []string{`unknown service "nosuch"`}, "ls", f.ep, "nosuch")
	// Environment variables as defaults, flags before the arguments.
	r := etcdlb(t, 30*time.Second, []string{"ETCDCTL_ENDPOINTS=" + strings.Join(f.etcd.Endpoints(), ",")}, "ls", "echo")
	if r.code != 0 || !strings.Contains(r.stdout, a0) {
		t.Errorf("ETCDCTL_ENDPOINTS=... etcdlb ls echo: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	f.run(t, 0, []string{"weight override 5", "own weight 1"}, "weight", f.ep, "echo", a0, "5")
	if w, ok := f.override(t, a0); !ok || w != 5 {
		t.Errorf("after etcdlb weight 5: override %d, %v", w, ok)
	}
	for _, bad := range []string{"-1", "1.5", "1000001", "abc", "99999999999999999999", "+5", "", " 5", "0x10", "1e3"} {
		f.run(t, 2, []string{fmt.Sprintf("weight %q is not an integer in 0..1000000", bad)}, "weight", "echo", a0, "--", bad)
	}
	f.run(t, 1, []string{`unknown address "127.0.0.1:1"`, a0}, "weight", "echo", "127.0.0.1:1", "5", f.ep)
	f.run(t, 1, []string{`unknown service "nosuch"`}, "weight", "nosuch", a0, "5", f.ep)
	f.run(t, 2, []string{"wrong number of arguments"}, "weight", "echo", a0, f.ep)
	f.run(t, 1, []string{`unknown service "nosuch"`}, "drain", "nosuch", a0, f.ep)
	f.run(t, 1, []string{`unknown address "127.0.0.1:1"`, a0, a1}, "drain", f.ep, "echo", "127.0.0.1:1")
	f.run(t, 1, []string{`unknown address "127.0.0.1:1"`}, "undrain", "echo", "127.0.0.1:1", f.ep)
	// --force sets an override ahead of a deploy.
	f.run(t, 0, []string{"127.0.0.1:1: weight override 4; not registered"}, "weight", "--force", "echo", "127.0.0.1:1", "4", f.ep)
	f.run(t, 0, []string{"override cleared; not registered"}, "override", "clear", "echo", "127.0.0.1:1", f.ep)

	f.run(t, 0, []string{"drained"}, "drain", "echo", a1, f.ep)
	if w, ok := f.override(t, a1); !ok || w != 0 {
		t.Errorf("after etcdlb drain: override %d, %v", w, ok)
	}
	f.run(t, 0, []string{"override cleared", "own weight 1 applies"}, "undrain", "echo", a1, f.ep)
	if _, ok := f.override(t, a1); ok {
		t.Errorf("after etcdlb undrain: override still set")
	}
	f.run(t, 0, []string{"nothing to do"}, "undrain", "echo", a1, f.ep)
	f.run(t, 1, []string{"is not drained", "override clear"}, "undrain", "echo", a0, f.ep)
	f.run(t, 0, []string{"override cleared"}, "override", "clear", "echo", a0, f.ep)
	if _, ok := f.override(t, a0); ok {
		t.Errorf("after etcdlb override clear: override still set")
	}
	f.run(t, 2, []string{`unknown subcommand "set"`}, "override", "set", "echo", a0, f.ep)
	f.run(t, 1, []string{`unknown address`}, "override", "clear", "echo", "127.0.0.1:1", f.ep)

	for _, c := range commands {
		r := f.run(t, 0, []string{"Usage: etcdlb " + c.name}, c.name, "--help")
		if c != demoCmd && !strings.Contains(r.stdout, "-endpoints") {
			t.Errorf("etcdlb %s --help lacks the connection flags:\n%s", c.name, r.stdout)
		}
	}
}

func TestConnectionErrors(t *testing.T) {
	start := time.Now()
	r := etcdlb(t, 30*time.Second, nil, "ls", "--endpoints=127.0.0.1:1,127.0.0.1:2", "--dial-timeout=500ms")
	if r.code != 1 || !regexp.MustCompile(`^etcdlb ls: etcd unreachable at 127\.0\.0\.1:1,127\.0\.0\.1:2 after [0-9.]+m?s: `).MatchString(r.stderr) {
		t.Errorf("etcdlb ls against nothing: exit %d, stderr %q; want the endpoints and the time waited", r.code, r.stderr)
	}
	// The same from the environment, for another command.
	r = etcdlb(t, 30*time.Second, []string{"ETCDCTL_ENDPOINTS=127.0.0.1:1", "ETCDCTL_DIAL_TIMEOUT=300ms"}, "drain", "echo", "10.0.0.1:80")
	if r.code != 1 || !strings.Contains(r.stderr, "etcdlb drain: etcd unreachable at 127.0.0.1:1 after") {
		t.Errorf("ETCDCTL_ENDPOINTS=127.0.0.1:1 etcdlb drain: exit %d, stderr %q", r.code, r.stderr)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("etcdlb ls against nothing took %v despite --dial-timeout=500ms", d)
	}
	r = etcdlb(t, 30*time.Second, nil, "ls", "--cacert=/nonexistent.pem")
	if r.code != 1 || !strings.Contains(r.stderr, "bad certificates: --cacert") {
		t.Errorf("etcdlb ls --cacert=/nonexistent.pem: exit %d, stderr %q", r.code, r.stderr)
	}
	r = etcdlb(t, 30*time.Second, nil, "ls", "--cert=/nonexistent.pem", "--key=/nonexistent.key")
	if r.code != 1 || !strings.Contains(r.stderr, "bad certificates: --cert") {
		t.Errorf("etcdlb ls --cert=/nonexistent.pem: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestWatch(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	expect := startWatch(t, ctx, nil, "watch", "echo", f.ep)
	expect("endpoint", f.addrs[0], "weight=1", "zone=a")
	expect("rejected", "bad", "malformed_json")
	expect("synced")
	if err := registry.SetOverride(ctx, f.cli, "echo", f.addrs[1], 3); err != nil {
		t.Fatal(err)
	}
	expect("override", f.addrs[1], "weight=3")
	if _, err := f.cli.Put(ctx, "echo/127.0.0.1:9", `{"addr":"127.0.0.1:9","weight":-4}`); err != nil {
		t.Fatal(err)
	}
	expect("rejected", "127.0.0.1:9", "bad_weight")
	if _, err := f.cli.Delete(ctx, "echo/127.0.0.1:9"); err != nil {
		t.Fatal(err)
	}
	expect("removed", "127.0.0.1:9")
	if err := registry.ClearOverride(ctx, f.cli, "echo", f.addrs[1]); err != nil {
		t.Fatal(err)
	}
	expect("override cleared", f.addrs[1])
}

// startWatch runs etcdlb with args (a watch) until ctx ends or the test
// does, and returns a function that waits for a line of its stdout holding
// every one of parts, and returns it.
func startWatch(t *testing.T, ctx context.Context, env []string, args ...string) func(parts ...string) string {
	t.Helper()
	cmd := exec.CommandContext(ctx, binary(t), args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 100)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		io.Copy(io.Discard, out)
	}()
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return func(parts ...string) string {
		t.Helper()
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					cmd.Wait()
					t.Fatalf("etcdlb %s ended while waiting for %q; stderr: %s", strings.Join(args, " "), parts, stderr.String())
				}
				match := true
				for _, p := range parts {
					match = match && strings.Contains(l, p)
				}
				if match {
					return l
				}
			case <-ctx.Done():
				t.Fatalf("etcdlb %s: no line with %q", strings.Join(args, " "), parts)
			}
		}
	}
}

// TestHostileText: text from etcd reaches the operator's terminal escaped,
// a zone or metadata with a control character is rejected, and ls lists
// only etcdlb's services, never other keys of a shared etcd.
func TestHostileText(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for k, v := range map[string]string{
		"echo/x\x1b[2Jy":               `{"addr":"127.0.0.1:7"}`,
		"echo/127.0.0.1:8":             `{"addr":"127.0.0.1:8","zone":"a\u001b]0;pwned\u0007\u001b[2J"}`,
		"echo/127.0.0.1:9":             `{"addr":"127.0.0.1:9","metadata":{"k":"\u001b[31mred"}}`,
		"/registry/pods/default/nginx": `{"kind":"Pod"}`,
		"other/10.0.0.1:80":            `{"addr":"10.0.0.1:80"}`,
	} {
		if _, err := f.cli.Put(ctx, k, v); err != nil {
			t.Fatal(err)
		}
	}
	raw := func(what, out string) {
		t.Helper()
		if strings.ContainsAny(out, "\x1b\a") {
			t.Errorf("%s printed a raw escape:\n%q", what, out)
		}
	}
	r := f.run(t, 0, []string{`x\x1b[2Jy`, "rejected: control_char: zone", "rejected: control_char: metadata"}, "ls", "echo", f.ep)
	raw("ls echo", r.stdout)
	r = f.run(t, 0, []string{"echo", f.addrs[0]}, "ls", f.ep)
	raw("ls", r.stdout)
	for _, foreign := range []string{"registry", "other", "nginx"} {
		if strings.Contains(r.stdout, foreign) {
			t.Errorf("ls lists a key that is not an etcdlb service (%s):\n%s", foreign, r.stdout)
		}
	}
	expect := startWatch(t, ctx, nil, "watch", "echo", f.ep)
	raw("watch", expect("rejected", "127.0.0.1:8", "control_char"))
	raw("watch", expect("rejected", "127.0.0.1:9", "control_char"))
	raw("watch", expect("endpoint", `x\x1b[2Jy`, "addr=127.0.0.1:7"))
}

// TestWeightChangesLiveSplit: "etcdlb weight" moves a running client's
// traffic.
func TestWeightChangesLiveSplit(t *testing.T) {
	f := newFixture(t)
	conn, err := grpc.NewClient("etcd:///echo",
		grpc.WithResolvers(resolver.NewBuilder(f.cli)),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"etcdlb_weighted":{}}]}`),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := testgrpc.NewTestServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// share returns a0's share of a batch of calls.
	share := func() float64 {
		n := 0
		const batch = 200
		for range batch {
			var p peer.Peer
			if _, err := client.EmptyCall(ctx, &testpb.Empty{}, grpc.WaitForReady(true), grpc.Peer(&p)); err != nil {
				t.Fatalf("EmptyCall: %v", err)
			}
			if p.Addr.String() == f.addrs[0] {
				n++
			}
		}
		return float64(n) / batch
	}
	waitShare := func(lo, hi float64) {
		t.Helper()
		var s float64
		for ctx.Err() == nil {
			if s = share(); s >= lo && s <= hi {
				return
			}
		}
		t.Fatalf("a0's share %.2f, want within [%.2f, %.2f]", s, lo, hi)
	}
	waitShare(0.35, 0.65) // 1:1
	f.run(t, 0, nil, "weight", "echo", f.addrs[0], "9", f.ep)
	waitShare(0.8, 0.97) // 9:1
	f.run(t, 0, nil, "drain", "echo", f.addrs[0], f.ep)
	waitShare(0, 0)
	f.run(t, 0, nil, "undrain", "echo", f.addrs[0], f.ep)
	waitShare(0.35, 0.65)
}

// TestWatchWithPrefix: a user who may read only the service's keys under
// its prefix (and its overrides) can watch it; watch checked the name with
// a read of the service without the prefix, which etcd denied.
func TestWatchWithPrefix(t *testing.T) {
	c := embedetcd.StartT(t, embedetcd.Options{Auth: true})
	root := c.ClientT(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, p := range []string{keyspace.ServicePrefix("p/", "echo"), keyspace.OverridePrefix("p/", "echo")} {
		if _, err := root.RoleAdd(ctx, "watcher"); err != nil && !strings.Contains(err.Error(), "already exists") {
			t.Fatal(err)
		}
		if _, err := root.RoleGrantPermission(ctx, "watcher", p, clientv3.GetPrefixRangeEnd(p), clientv3.PermissionType(clientv3.PermRead)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := root.UserAdd(ctx, "w", "pw"); err != nil {
		t.Fatal(err)
	}
	if _, err := root.UserGrantRole(ctx, "w", "watcher"); err != nil {
		t.Fatal(err)
	}
	if _, err := root.Put(ctx, "p/echo/127.0.0.1:1", `{"addr":"127.0.0.1:1"}`); err != nil {
		t.Fatal(err)
	}
	expect := startWatch(t, ctx, nil, "watch", "--prefix", "p/", "--user", "w:pw",
		"--endpoints="+strings.Join(c.Endpoints(), ","), "echo")
	expect("endpoint", "127.0.0.1:1", "weight=1")
	expect("synced")
}
