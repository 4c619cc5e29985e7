package registry

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

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
	overrides := map[string]uint32{}
	var bad []Instance
	for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
		id := strings.TrimPrefix(string(kv.Key), ovrPrefix)
		w, err := keyspace.DecodeOverride(string(kv.Key), kv.Value)
		if err != nil {
			bad = append(bad, Instance{Key: string(kv.Key), ID: id, Err: err, TTL: -1})
			continue
		}
		overrides[id] = w
	}
	var out []Instance
	ttls := map[clientv3.LeaseID]time.Duration{}
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
			ttl, ok := ttls[in.Lease]
			if !ok {
				ttl = -1
				if lr, err := cli.TimeToLive(ctx, in.Lease); err == nil && lr.TTL >= 0 {
					ttl = time.Duration(lr.TTL) * time.Second
				}
				ttls[in.Lease] = ttl
			}
			in.TTL = ttl
		}
		out = append(out, in)
	}
	for id, w := range overrides {
		out = append(out, Instance{Key: keyspace.OverrideKey(o.Prefix, service, id), ID: id, Override: w, HasOverride: true,
			TTL: -1, Err: errors.New("override of an endpoint that is not registered")})
	}
	out = append(out, bad...)
	slices.SortFunc(out, func(a, b Instance) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
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
