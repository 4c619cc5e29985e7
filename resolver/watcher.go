package resolver

import (
	"context"
	"errors"
	"strings"
	"sync"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcdlb/etcdlb/internal/etcdutil"
	"github.com/etcdlb/etcdlb/keyspace"
)

// Watcher reads one service's endpoint keys and operator overrides as the
// resolver does: List reads both at one revision, Watch follows both from
// a later one, and every key comes decoded, or rejected with the reason.
// The resolver of NewBuilder is built on it; `etcdlb watch` prints it.
type Watcher struct {
	cli       *clientv3.Client
	svcPrefix string
	ovrPrefix string
}

// NewWatcher returns a Watcher of service, whose keys are under the prefix
// of WithPrefix; the other options are ignored. It refuses a name that
// cannot be a service.
func NewWatcher(cli *clientv3.Client, service string, opts ...Option) (*Watcher, error) {
	if err := keyspace.CheckService(service); err != nil {
		return nil, err
	}
	o := newOptions(opts)
	return newWatcher(cli, o.Prefix, service), nil
}

func newWatcher(cli *clientv3.Client, prefix, service string) *Watcher {
	return &Watcher{
		cli:       cli,
		svcPrefix: keyspace.ServicePrefix(prefix, service),
		ovrPrefix: keyspace.OverridePrefix(prefix, service),
	}
}

// ServicePrefix is the prefix of the service's endpoint keys.
func (w *Watcher) ServicePrefix() string { return w.svcPrefix }

// OverridePrefix is the prefix of the service's override keys.
func (w *Watcher) OverridePrefix() string { return w.ovrPrefix }

// Change is one key of a listing, or one event of a watch.
type Change struct {
	Key      string
	ID       string // the key's last segment: the endpoint's id
	Override bool   // an operator override; else an endpoint key
	Deleted  bool
	Value    keyspace.Value // the endpoint, unless Override, Deleted or Err
	Weight   uint32         // the override's weight, if Override
	Err      error          // a *keyspace.ValueError: the value is rejected
}

// List reads the service's endpoints and overrides at one revision, the
// endpoints first, each in key order. A permission error names the prefix
// the user cannot read.
func (w *Watcher) List(ctx context.Context) (*etcdserverpb.ResponseHeader, []Change, error) {
	resp, err := w.cli.Txn(ctx).Then(
		clientv3.OpGet(w.svcPrefix, clientv3.WithPrefix()),
		clientv3.OpGet(w.ovrPrefix, clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return nil, nil, w.explain(ctx, "list", err)
	}
	svc, ovr := resp.Responses[0].GetResponseRange().Kvs, resp.Responses[1].GetResponseRange().Kvs
	changes := make([]Change, 0, len(svc)+len(ovr))
	for _, kv := range svc {
		changes = w.appendChange(changes, kv, false, false)
	}
	for _, kv := range ovr {
		changes = w.appendChange(changes, kv, true, false)
	}
	return resp.Header, changes, nil
}

func (w *Watcher) explain(ctx context.Context, op string, err error) error {
	return etcdutil.Explain(ctx, w.cli, op, err, etcdutil.ReadPrefix(w.svcPrefix), etcdutil.ReadPrefix(w.ovrPrefix))
}

// appendChange decodes kv. A key under a deeper path (svc/sub/x belongs
// to the service svc/sub) is left out.
func (w *Watcher) appendChange(changes []Change, kv *mvccpb.KeyValue, ovr, deleted bool) []Change {
	c := Change{Key: string(kv.Key), Override: ovr, Deleted: deleted}
	if ovr {
		c.ID = strings.TrimPrefix(c.Key, w.ovrPrefix)
		if !deleted {
			c.Weight, c.Err = keyspace.DecodeOverride(c.Key, kv.Value)
		}
		return append(changes, c)
	}
	c.ID = strings.TrimPrefix(c.Key, w.svcPrefix)
	if c.ID == "" || strings.Contains(c.ID, "/") {
		return changes
	}
	if !deleted {
		c.Value, c.Err = keyspace.DecodeValue(c.Key, c.ID, kv.Value)
	}
	return append(changes, c)
}

// Batch is one watch response.
type Batch struct {
	Header  *etcdserverpb.ResponseHeader
	Changes []Change
	// Err ends the watch: ErrWatchClosed, the compaction (Compacted), or
	// why etcd ended it, a permission error naming the prefix.
	Err             error
	Compacted       bool
	CompactRevision int64 // when Compacted, if etcd said
}

// ErrWatchClosed is the Err of a watch that etcd's client closed.
var ErrWatchClosed = errors.New("watch closed")

// Stream is a running watch.
type Stream struct {
	batches chan Batch
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// Watch follows the service's endpoints and overrides from revision rev
// until ctx ends, Close, or the watch fails; the failure is the last batch.
// It requires etcd to have a leader.
func (w *Watcher) Watch(ctx context.Context, rev int64) *Stream {
	ctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	s := &Stream{batches: make(chan Batch, 16), cancel: cancel}
	svcCh := w.cli.Watch(ctx, w.svcPrefix, clientv3.WithPrefix(), clientv3.WithRev(rev))
	ovrCh := w.cli.Watch(ctx, w.ovrPrefix, clientv3.WithPrefix(), clientv3.WithRev(rev))
	s.wg.Go(func() { w.forward(ctx, s.batches, svcCh, ovrCh) })
	return s
}

// Batches delivers the watch responses; it is closed after the last.
func (s *Stream) Batches() <-chan Batch { return s.batches }

// Close ends the watch and waits for its goroutine.
func (s *Stream) Close() {
	s.cancel()
	s.wg.Wait()
}

// forward decodes the responses of both watches onto out, in the order they
// arrive, until one fails or ctx ends.
func (w *Watcher) forward(ctx context.Context, out chan<- Batch, svcCh, ovrCh clientv3.WatchChan) {
	defer close(out)
	for {
		var (
			wr  clientv3.WatchResponse
			ok  bool
			ovr bool
		)
		select {
		case <-ctx.Done():
			return
		case wr, ok = <-svcCh:
		case wr, ok = <-ovrCh:
			ovr = true
		}
		b := w.batch(ctx, wr, ok, ovr)
		select {
		case out <- b:
		case <-ctx.Done():
			return
		}
		if b.Err != nil {
			return
		}
	}
}

func (w *Watcher) batch(ctx context.Context, wr clientv3.WatchResponse, ok, ovr bool) Batch {
	switch err := wr.Err(); {
	case !ok:
		return Batch{Err: ErrWatchClosed}
	case err == nil:
	case wr.CompactRevision != 0 || errors.Is(err, rpctypes.ErrCompacted):
		return Batch{Header: wr.Header, Err: err, Compacted: true, CompactRevision: wr.CompactRevision}
	default:
		return Batch{Header: wr.Header, Err: w.explain(ctx, "watch", err)}
	}
	b := Batch{Header: wr.Header, Changes: make([]Change, 0, len(wr.Events))}
	for _, ev := range wr.Events {
		b.Changes = w.appendChange(b.Changes, ev.Kv, ovr, ev.Type == mvccpb.DELETE)
	}
	return b
}
