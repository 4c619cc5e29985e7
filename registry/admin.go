package registry

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcdlb/etcdlb/internal/etcdutil"
	"github.com/etcdlb/etcdlb/keyspace"
)

// Instance is one key of a service as an operator sees it.
type Instance struct {
	Key string
	ID  string // the key's last segment
	// Own is the value as registered; zero when Err is set.
	Own keyspace.Value
	// Err is why clients skip the key; nil when they use it.
	Err error
	// Override is the operator's weight, when HasOverride.
	Override    uint32
	HasOverride bool
	// Lease is the key's lease, 0 when none; TTL the time it has left,
	// -1 when it has no lease or the lease is gone.
	Lease clientv3.LeaseID
	TTL   time.Duration
}

// Weight is the weight clients use: the override when there is one.
func (in Instance) Weight() uint32 {
	if in.HasOverride {
		return in.Override
	}
	return in.Own.Weight
}

// List returns every key of service, valid or rejected, sorted by key, and
// the overrides whose endpoint does not exist (as Instances with Err set).
func List(ctx context.Context, cli *clientv3.Client, service string, opts ...Option) ([]Instance, error) {
	if err := keyspace.CheckService(service); err != nil {
		return nil, err
	}
	o := newOptions(opts)
	svcPrefix, ovrPrefix := keyspace.ServicePrefix(o.Prefix, service), keyspace.OverridePrefix(o.Prefix, service)
	resp, err := cli.Txn(ctx).Then(
		clientv3.OpGet(svcPrefix, clientv3.WithPrefix()),
		clientv3.OpGet(ovrPrefix, clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return nil, etcdutil.Explain(ctx, cli, "list "+service, err, etcdutil.ReadPrefix(svcPrefix), etcdutil.ReadPrefix(ovrPrefix))
	}
	overrides, out := decodeOverrides(resp.Responses[1].GetResponseRange().Kvs, ovrPrefix)
	var leases []clientv3.LeaseID
	for _, kv := range resp.Responses[0].GetResponseRange().Kvs {
		id := strings.TrimPrefix(string(kv.Key), svcPrefix)
		if strings.Contains(id, "/") {
			continue
		}
		in := Instance{Key: string(kv.Key), ID: id, Lease: clientv3.LeaseID(kv.Lease), TTL: -1}
		in.Own, in.Err = keyspace.DecodeValue(in.Key, id, kv.Value)
		in.Override, in.HasOverride = overrides[id]
		delete(overrides, id)
		if in.Lease != 0 {
			leases = append(leases, in.Lease)
		}
		out = append(out, in)
	}
	ttls := leaseTTLs(ctx, cli, leases)
	for i := range out {
		if ttl, ok := ttls[out[i].Lease]; ok {
			out[i].TTL = ttl
		}
	}
	for id, w := range overrides {
		out = append(out, Instance{Key: keyspace.OverrideKey(o.Prefix, service, id), ID: id, Override: w, HasOverride: true,
			TTL: -1, Err: errors.New("override of an endpoint that is not registered")})
	}
	slices.SortFunc(out, func(a, b Instance) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

// decodeOverrides returns the valid overrides by id, and the rejected ones
// as Instances.
func decodeOverrides(kvs []*mvccpb.KeyValue, ovrPrefix string) (map[string]uint32, []Instance) {
	overrides := map[string]uint32{}
	var bad []Instance
	for _, kv := range kvs {
		id := strings.TrimPrefix(string(kv.Key), ovrPrefix)
		w, err := keyspace.DecodeOverride(string(kv.Key), kv.Value)
		if err != nil {
			bad = append(bad, Instance{Key: string(kv.Key), ID: id, Err: err, TTL: -1})
			continue
		}
		overrides[id] = w
	}
	return overrides, bad
}

// ttlConcurrency bounds the TimeToLive requests List has in flight.
var ttlConcurrency = 32

// leaseTTLs returns the time each lease has left, or -1 when it is gone.
// etcd has no call that reads the TTLs of many leases, and every
// registration has a lease of its own: they are asked for concurrently, so
// that listing 1,000 endpoints is not 1,000 round trips one after another.
func leaseTTLs(ctx context.Context, cli *clientv3.Client, leases []clientv3.LeaseID) map[clientv3.LeaseID]time.Duration {
	ttls := make(map[clientv3.LeaseID]time.Duration, len(leases))
	var (
		mu  sync.Mutex
		wg  sync.WaitGroup
		sem = make(chan struct{}, ttlConcurrency)
	)
	for _, id := range leases {
		mu.Lock()
		_, asked := ttls[id]
		if !asked {
			ttls[id] = -1 // asked for once; the answer if it fails
		}
		mu.Unlock()
		if asked {
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if lr, err := cli.TimeToLive(ctx, id); err == nil && lr.TTL >= 0 {
				mu.Lock()
				ttls[id] = time.Duration(lr.TTL) * time.Second
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return ttls
}

// SetOverride sets the operator's weight for the endpoint id (its address,
// for etcdlb registrations) of service. It wins over the endpoint's own
// weight until ClearOverride, and survives the endpoint's re-registrations.
func SetOverride(ctx context.Context, cli *clientv3.Client, service, id string, weight uint32, opts ...Option) error {
	if err := keyspace.CheckService(service); err != nil {
		return err
	}
	if id == "" || strings.Contains(id, "/") {
		return fmt.Errorf("etcdlb: bad endpoint id %q", id)
	}
	b, err := keyspace.EncodeOverride(weight)
	if err != nil {
		return err
	}
	o := newOptions(opts)
	key := keyspace.OverrideKey(o.Prefix, service, id)
	if _, err = cli.Put(ctx, key, string(b)); err != nil {
		return etcdutil.Explain(ctx, cli, "set override", err, etcdutil.Write(key))
	}
	return nil
}

// GetOverride returns the operator's weight for the endpoint id of service,
// and whether there is one.
func GetOverride(ctx context.Context, cli *clientv3.Client, service, id string, opts ...Option) (uint32, bool, error) {
	o := newOptions(opts)
	key := keyspace.OverrideKey(o.Prefix, service, id)
	resp, err := cli.Get(ctx, key)
	if err != nil {
		return 0, false, etcdutil.Explain(ctx, cli, "get override", err, etcdutil.Read(key))
	}
	if len(resp.Kvs) == 0 {
		return 0, false, nil
	}
	w, err := keyspace.DecodeOverride(key, resp.Kvs[0].Value)
	if err != nil {
		return 0, false, err
	}
	return w, true, nil
}

// ClearOverride deletes the operator's weight for the endpoint id of
// service; the endpoint's own weight applies again.
func ClearOverride(ctx context.Context, cli *clientv3.Client, service, id string, opts ...Option) error {
	o := newOptions(opts)
	key := keyspace.OverrideKey(o.Prefix, service, id)
	if _, err := cli.Delete(ctx, key); err != nil {
		return etcdutil.Explain(ctx, cli, "clear override", err, etcdutil.Write(key))
	}
	return nil
}

// Services returns the services that have a live registration made by
// Register, from the service index (IndexPrefix): it reads no key outside
// etcdlb's own, and lists nothing that is not a service. Endpoints
// registered otherwise (etcd's naming/endpoints, older etcdlb, by hand) have
// no index key: List finds them by their service's name.
func Services(ctx context.Context, cli *clientv3.Client, opts ...Option) ([]string, error) {
	o := newOptions(opts)
	idx := keyspace.IndexPrefix(o.Prefix)
	resp, err := cli.Get(ctx, idx, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, etcdutil.Explain(ctx, cli, "list services", err, etcdutil.ReadPrefix(idx))
	}
	var out []string
	for _, kv := range resp.Kvs {
		k := strings.TrimPrefix(string(kv.Key), idx)
		if i := strings.LastIndex(k, "/"); i > 0 && keyspace.CheckService(k[:i]) == nil {
			out = append(out, k[:i])
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}
