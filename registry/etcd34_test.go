package registry_test

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcdlb/etcdlb/internal/etcdproc"
	"github.com/etcdlb/etcdlb/internal/etcdtest"
)

// TestEtcd34 runs the resolver and registration against etcd 3.4 (Debian's
// etcd-server, run as a process), the oldest server the README supports:
// list and watch, a weight edited in place kept as an override, lease loss
// and re-registration, deregistration.
func TestEtcd34(t *testing.T) {
	p := etcdproc.Start34(t, false)
	t.Logf("etcd %s at %s", p.Version, p.Endpoints()[0])
	newEnv34 := func(t *testing.T) *etcdtest.Env {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		t.Cleanup(cancel)
		e := &etcdtest.Env{Cli: p.Client(t), Ctx: ctx}
		if _, err := e.Cli.Delete(ctx, "", clientv3.WithFromKey()); err != nil {
			t.Fatal(err)
		}
		return e
	}
	t.Run("lease revoked comes back", func(t *testing.T) { leaseRevokedComesBack(t, newEnv34(t)) })
	t.Run("operator weight survives", func(t *testing.T) { operatorWeightSurvives(t, newEnv34(t)) })
}
