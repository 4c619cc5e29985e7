package resolver_test

import (
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/resolver"

	"github.com/etcdlb/etcdlb/internal/embedetcd"
	"github.com/etcdlb/etcdlb/internal/etcdtest"
	"github.com/etcdlb/etcdlb/registry"
	etcdlbresolver "github.com/etcdlb/etcdlb/resolver"
)

// TestTLSAndAuth runs etcd with client certificates and auth: discovery and
// registration work with the right credentials, and without them the
// resolver reports a clear error instead of an endpoint set.
func TestTLSAndAuth(t *testing.T) {
	c := embedetcd.StartT(t, embedetcd.Options{TLS: true, Auth: true})
	cli := c.ClientT(t)
	reg := etcdtest.Register(t, cli, registry.Registration{Service: "echo", Addr: "10.0.0.1:80", Weight: 2})
	cc, _ := etcdtest.Build(t, cli, "echo")
	cc.WaitEndpoints(t, "10.0.0.1:80/2/")
	if err := reg.SetWeight(t.Context(), 3); err != nil {
		t.Fatal(err)
	}
	cc.WaitEndpoints(t, "10.0.0.1:80/3/")

	for _, tc := range []struct {
		name string
		cfg  func(*clientv3.Config)
		want string
	}{
		{"no password", func(cfg *clientv3.Config) { cfg.Username, cfg.Password = "", "" }, `permission denied: etcd user of the client certificate has no read permission on prefix "echo/"`},
		{"wrong password", func(cfg *clientv3.Config) { cfg.Password = "wrong" }, "authentication failed"},
		// No login and DialTimeout 0: the client does not wait for a
		// connection, so the resolver meets the refusal itself.
		{"no client certificate", func(cfg *clientv3.Config) {
			cfg.TLS, cfg.DialTimeout, cfg.Username, cfg.Password = c.TLSWithoutClientCert(), 0, "", ""
		}, "etcd connection"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := c.ClientConfig()
			cfg.Logger = zap.NewNop()
			tc.cfg(&cfg)
			bad, err := clientv3.New(cfg)
			if err != nil {
				t.Logf("client refused at once: %v", err)
				if tc.want != "" && !strings.Contains(err.Error(), tc.want) {
					t.Errorf("error %q, want it to say %q", err, tc.want)
				}
				return
			}
			defer bad.Close()
			cc, _ := etcdtest.Build(t, bad, "echo", etcdlbresolver.WithRequestTimeout(time.Second))
			got := cc.WaitFor(t, "an error", func(_ *resolver.State, errs []error) bool { return len(errs) > 0 })
			_ = got
			if n := cc.NumStates(); n != 0 {
				t.Fatalf("%d states pushed without credentials", n)
			}
			err = cc.Errs()[0]
			t.Logf("resolver error: %v", err)
			if !strings.Contains(err.Error(), "list") || !strings.Contains(err.Error(), `"echo/"`) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want it to say %q", err, tc.want)
			}
		})
	}
}
