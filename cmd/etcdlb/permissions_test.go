package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	grpcresolver "google.golang.org/grpc/resolver"
	"google.golang.org/grpc/serviceconfig"

	"github.com/etcdlb/etcdlb/endpoint"
	"github.com/etcdlb/etcdlb/internal/embedetcd"
	"github.com/etcdlb/etcdlb/internal/etcdproc"
	"github.com/etcdlb/etcdlb/internal/poll"
	"github.com/etcdlb/etcdlb/internal/syncbuf"
	"github.com/etcdlb/etcdlb/keyspace"
	"github.com/etcdlb/etcdlb/registry"
	"github.com/etcdlb/etcdlb/resolver"
)

// grant is one "etcdctl role grant-permission" line of the README.
type grant struct {
	role, perm, key string
	prefix          bool
}

// readmeRoles are the README's etcd permissions, as its block of etcdctl
// commands says: the roles' grants in order, and each user's role.
type readmeRoles struct {
	roles  []string
	grants []grant
	users  map[string]string // user -> role
}

// parseREADMERoles reads the etcdctl commands of the README's "etcd
// permissions" section, refusing any line it does not understand, so that
// what the test creates is what the README says, literally.
func parseREADMERoles(t *testing.T) readmeRoles {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(b), "\n### etcd permissions\n")
	if !ok {
		t.Fatal(`README has no "### etcd permissions" section`)
	}
	_, block, ok := strings.Cut(sec, "```sh\n")
	block, _, ok2 := strings.Cut(block, "```")
	if !ok || !ok2 {
		t.Fatal(`README's "etcd permissions" has no sh block`)
	}
	rs := readmeRoles{users: map[string]string{}}
	for _, line := range strings.Split(block, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 0:
		case len(f) == 4 && f[0] == "etcdctl" && f[1] == "role" && f[2] == "add":
			rs.roles = append(rs.roles, f[3])
		case (len(f) == 6 || len(f) == 7 && f[6] == "--prefix") && f[0] == "etcdctl" && f[1] == "role" && f[2] == "grant-permission":
			rs.grants = append(rs.grants, grant{role: f[3], perm: f[4], key: f[5], prefix: len(f) == 7})
		case len(f) == 4 && f[0] == "etcdctl" && f[1] == "user" && f[2] == "add":
			rs.users[f[3]] = ""
		case len(f) == 5 && f[0] == "etcdctl" && f[1] == "user" && f[2] == "grant-role":
			rs.users[f[3]] = f[4]
		default:
			t.Fatalf("README's etcd permissions: a line the test does not know: %q", line)
		}
	}
	return rs
}

// userOf returns the user with role.
func (rs readmeRoles) userOf(t *testing.T, role string) string {
	for u, r := range rs.users {
		if r == role {
			return u
		}
	}
	t.Fatalf("README: no user has role %q", role)
	return ""
}

var permTypes = map[string]clientv3.PermissionType{
	"read": clientv3.PermissionType(clientv3.PermRead), "write": clientv3.PermissionType(clientv3.PermWrite),
	"readwrite": clientv3.PermissionType(clientv3.PermReadWrite),
}

// create makes role as the README does, with its grants changed by edit
// (nil: as written; return false to leave a grant out), and gives it to
// its user again (deleting a role takes it from its users).
func (rs readmeRoles) create(t *testing.T, root *clientv3.Client, role string, edit func(*grant) bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, _ = root.RoleDelete(ctx, role)
	if _, err := root.RoleAdd(ctx, role); err != nil {
		t.Fatal(err)
	}
	for _, g := range rs.grants {
		if g.role != role || edit != nil && !edit(&g) {
			continue
		}
		end := ""
		if g.prefix {
			end = clientv3.GetPrefixRangeEnd(g.key)
		}
		pt, ok := permTypes[g.perm]
		if !ok {
			t.Fatalf("README: unknown permission %q", g.perm)
		}
		if _, err := root.RoleGrantPermission(ctx, role, g.key, end, pt); err != nil {
			t.Fatalf("grant %+v: %v", g, err)
		}
	}
	for u, r := range rs.users {
		if r != role {
			continue
		}
		if _, err := root.UserAdd(ctx, u, "pw-"+u); err != nil && !strings.Contains(err.Error(), "already exists") {
			t.Fatal(err)
		}
		if _, err := root.UserGrantRole(ctx, u, role); err != nil {
			t.Fatal(err)
		}
	}
}

// variant is a role with one permission less: a grant left out, or a
// readwrite grant cut to read or write. missing is the permission lost.
type variant struct {
	name    string
	edit    func(*grant) bool
	missing grant // perm "read" or "write"
}

func variants(rs readmeRoles, role string) []variant {
	var out []variant
	for _, g := range rs.grants {
		if g.role != role {
			continue
		}
		cuts := map[string]string{"": g.perm} // what is left -> what is missing
		if g.perm == "readwrite" {
			cuts = map[string]string{"": "readwrite", "read": "write", "write": "read"}
		}
		for left, lost := range cuts {
			if lost == "readwrite" {
				lost = "read" // without either, the first refusal is a read: a server's first write compares the key's lease
			}
			name := fmt.Sprintf("without %s %s", g.perm, g.key)
			if left != "" {
				name = fmt.Sprintf("%s %s only", left, g.key)
			}
			m := g
			m.perm = lost
			out = append(out, variant{name: name, missing: m, edit: func(x *grant) bool {
				if x.key != g.key || x.perm != g.perm {
					return true
				}
				x.perm = left
				return left != ""
			}})
		}
	}
	return out
}

// waitFor waits, bounded, for cond.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	if !poll.Until(10*time.Second, cond) {
		t.Fatalf("timed out waiting for %s", what)
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// deniedText is what an error says of the permission missing.
func deniedText(user string, g grant, key string) string {
	what := "key"
	if key == "" {
		key, what = g.key, "prefix"
	}
	return fmt.Sprintf("user %q has no %s permission on %s %q", user, g.perm, what, key)
}

// authEtcd is an etcd with auth on: its endpoints and a root client.
type authEtcd struct {
	endpoints []string
	root      *clientv3.Client
}

func (a authEtcd) client(t *testing.T, user string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: a.endpoints, Username: user, Password: "pw-" + user,
		DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// TestREADMEPermissions creates the README's roles on an embedded etcd with
// auth on and runs a server, a client and an operator each under its role,
// then under its role with one permission less, which must fail with an
// error naming the key, the user and the permission.
func TestREADMEPermissions(t *testing.T) {
	c := embedetcd.StartT(t, embedetcd.Options{Auth: true})
	testPermissions(t, authEtcd{endpoints: c.Endpoints(), root: c.ClientT(t)})
}

func testPermissions(t *testing.T, a authEtcd) {
	rs := parseREADMERoles(t)
	if len(rs.roles) != 3 {
		t.Fatalf("README roles %q, want a server's, a client's and an operator's", rs.roles)
	}
	// A registration of the service that every party sees.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	reg, err := registry.Register(ctx, a.root, registry.Registration{Service: "echo", Addr: "127.0.0.1:1001", Weight: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()

	for _, p := range []struct {
		role string
		run  func(t *testing.T, a authEtcd, user string, reg *registry.Registrar, missing *grant)
	}{
		{"echo-server", runServer},
		{"echo-client", runClient},
		{"echo-operator", runOperator},
	} {
		user := rs.userOf(t, p.role)
		t.Run(p.role, func(t *testing.T) {
			rs.create(t, a.root, p.role, nil)
			p.run(t, a, user, reg, nil)
		})
		for _, v := range variants(rs, p.role) {
			t.Run(p.role+"/"+v.name, func(t *testing.T) {
				rs.create(t, a.root, p.role, v.edit)
				p.run(t, a, user, reg, &v.missing)
			})
		}
	}
}

// runServer registers, changes its weight, drains, sees an in-place edit
// kept as an override, and deletes its key at once on Close.
func runServer(t *testing.T, a authEtcd, user string, _ *registry.Registrar, missing *grant) {
	const addr = "127.0.0.1:2001"
	key, idx, ovr := keyspace.EndpointKey("", "echo", addr), keyspace.IndexKey("", "echo", addr), keyspace.OverrideKey("", "echo", addr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	defer a.root.Delete(ctx, ovr)
	var logs syncbuf.Buffer
	cli := a.client(t, user)
	rctx, rcancel := context.WithTimeout(ctx, 2*time.Second)
	defer rcancel()
	reg, err := registry.Register(rctx, cli, registry.Registration{Service: "echo", Addr: addr, Weight: 2},
		registry.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))), registry.WithBackoff(50*time.Millisecond, 500*time.Millisecond))
	// Register's first write compares the key's lease (read) and writes the
	// key and its index entry (write).
	if missing != nil && (missing.key == "echo/" || missing.perm == "write" && strings.HasPrefix(idx, missing.key)) {
		want := deniedText(user, *missing, key)
		if missing.key != "echo/" {
			want = deniedText(user, *missing, idx)
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("Register: %v; want an error saying %s", err, want)
		}
		if rctx.Err() != nil {
			t.Errorf("Register: %v; want the refusal at once, not when its context ends", err)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	get := func(k string) *string {
		resp, err := a.root.Get(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Kvs) == 0 {
			return nil
		}
		v := string(resp.Kvs[0].Value)
		return &v
	}
	if get(idx) == nil {
		t.Errorf("no index key %s after Register", idx)
	}
	uctx, ucancel := context.WithTimeout(ctx, 2*time.Second)
	defer ucancel()
	err = reg.SetWeight(uctx, 3)
	if missing != nil && missing.key == "echo/" && missing.perm == "read" {
		// The update's compare reads the key.
		if want := deniedText(user, *missing, key); err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("SetWeight: %v; want an error saying %s", err, want)
		}
		closeDeletes(t, a, reg, key)
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.Drain(uctx); err != nil {
		t.Fatal(err)
	}
	if v := get(key); v == nil || !strings.Contains(*v, `"weight":0`) {
		t.Fatalf("after Drain the key holds %v", v)
	}
	// An operator's edit in place is kept as an override.
	if _, err := a.root.Put(ctx, key, `{"addr":"`+addr+`","weight":5}`, clientv3.WithIgnoreLease()); err != nil {
		t.Fatal(err)
	}
	if missing != nil {
		want := deniedText(user, *missing, ovr)
		// slog quotes the error: \" in the log.
		if !poll.Until(10*time.Second, func() bool { return strings.Contains(strings.ReplaceAll(logs.String(), `\"`, `"`), want) }) {
			t.Fatalf("the server's log does not say %s:\n%s", want, logs.String())
		}
		if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "op=put") {
			t.Errorf("log lacks the WARN level or the operation:\n%s", logs.String())
		}
	} else {
		waitFor(t, "the edit kept as an override", func() bool {
			v := get(ovr)
			return v != nil && *v == `{"weight":5}`
		})
	}
	closeDeletes(t, a, reg, key)
}

// closeDeletes closes reg and checks its key is gone at once.
func closeDeletes(t *testing.T, a authEtcd, reg *registry.Registrar, key string) {
	t.Helper()
	if err := reg.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	resp, err := a.root.Get(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != 0 {
		t.Errorf("key %s still there after Close", key)
	}
}

// recorder is the resolver's consumer, as grpc's ClientConn is: it keeps
// what the resolver pushes.
type recorder struct {
	mu      sync.Mutex
	weights map[string]uint32
	err     error
}

func (r *recorder) UpdateState(s grpcresolver.State) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.weights = map[string]uint32{}
	for _, ep := range s.Endpoints {
		r.weights[endpoint.Addr(ep)] = endpoint.Get(ep).Weight
	}
	return nil
}

func (r *recorder) ReportError(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.err = err
}

func (r *recorder) NewAddress([]grpcresolver.Address) {}
func (r *recorder) ParseServiceConfig(string) *serviceconfig.ParseResult {
	return &serviceconfig.ParseResult{}
}

func (r *recorder) weight(addr string) (uint32, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.weights[addr], r.err
}

// runClient resolves echo and follows a weight change.
func runClient(t *testing.T, a authEtcd, user string, reg *registry.Registrar, missing *grant) {
	cli := a.client(t, user)
	rec := &recorder{}
	var logs syncbuf.Buffer
	r, err := resolver.NewBuilder(cli, resolver.WithRequestTimeout(2*time.Second),
		resolver.WithLogger(slog.New(slog.NewTextHandler(&logs, nil)))).
		Build(grpcresolver.Target{URL: *mustURL(t, "etcd:///echo")}, rec, grpcresolver.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if missing != nil {
		want := deniedText(user, *missing, "")
		waitFor(t, "the resolver reports "+want, func() bool {
			_, err := rec.weight("127.0.0.1:1001")
			return err != nil && strings.Contains(err.Error(), want)
		})
		// It had no endpoints: it must not say it keeps them.
		if l := logs.String(); !strings.Contains(l, "no endpoints to keep") || strings.Contains(l, "keeping the last endpoints") {
			t.Errorf("the resolver's log:\n%s", l)
		}
		return
	}
	waitWeight := func(w uint32) {
		waitFor(t, fmt.Sprintf("weight %d", w), func() bool {
			got, _ := rec.weight("127.0.0.1:1001")
			return got == w
		})
	}
	waitWeight(2)
	if err := reg.SetWeight(t.Context(), 4); err != nil {
		t.Fatal(err)
	}
	waitWeight(4)
	if err := reg.SetWeight(t.Context(), 2); err != nil {
		t.Fatal(err)
	}
	waitWeight(2)
}

// runOperator runs ls SERVICE, ls, weight, drain and watch.
func runOperator(t *testing.T, a authEtcd, user string, _ *registry.Registrar, missing *grant) {
	const addr = "127.0.0.1:1001"
	flags := []string{"--endpoints=" + strings.Join(a.endpoints, ","), "--user=" + user + ":pw-" + user}
	run := func(code int, want []string, args ...string) {
		t.Helper()
		expect(t, nil, code, want, append(args, flags...)...)
	}
	defer registry.ClearOverride(context.Background(), a.root, "echo", addr)
	if missing == nil {
		run(0, []string{"echo", addr, "ok"}, "ls", "echo")
		run(0, []string{"echo", addr}, "ls")
		run(0, []string{"weight override 7"}, "weight", "echo", addr, "7")
		run(0, []string{"drained"}, "drain", "echo", addr)
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		defer cancel()
		expect := startWatch(t, ctx, nil, append([]string{"watch", "echo"}, flags...)...)
		expect("endpoint", addr)
		expect("synced")
		if err := registry.SetOverride(ctx, a.root, "echo", addr, 9); err != nil {
			t.Fatal(err)
		}
		expect("override", addr, "weight=9")
		return
	}
	switch {
	case missing.key == "_etcdlb/services/":
		run(1, []string{"etcdlb ls: ", deniedText(user, *missing, "")}, "ls")
		run(0, []string{"echo", addr, "ok"}, "ls", "echo") // one service needs no index
	case missing.perm == "write":
		run(0, []string{"echo", addr, "ok"}, "ls", "echo")
		run(1, []string{"etcdlb weight: ", deniedText(user, *missing, keyspace.OverrideKey("", "echo", addr))}, "weight", "echo", addr, "7")
		run(1, []string{"etcdlb drain: ", deniedText(user, *missing, keyspace.OverrideKey("", "echo", addr))}, "drain", "echo", addr)
	default: // a read of the service or its overrides
		want := deniedText(user, *missing, "")
		for _, args := range [][]string{{"ls", "echo"}, {"weight", "echo", addr, "7"}, {"drain", "echo", addr}, {"watch", "echo"}} {
			run(1, []string{"etcdlb " + args[0] + ": ", want}, args...)
		}
		// In a listing of every service, the service is shown denied.
		run(0, []string{"echo", "denied: no read permission on " + fmt.Sprintf("%q", missing.key)}, "ls")
	}
}

// TestREADMEPermissionsEtcd34 is TestREADMEPermissions against etcd 3.4 (Debian's
// etcd-server), run as a process: registration, the resolver and the CLI
// on the oldest etcd the README says is supported.
func TestREADMEPermissionsEtcd34(t *testing.T) {
	p := etcdproc.Start34(t, true)
	t.Logf("etcd %s at %s", p.Version, p.Endpoints()[0])
	testPermissions(t, authEtcd{endpoints: p.Endpoints(), root: p.Client(t)})
}
