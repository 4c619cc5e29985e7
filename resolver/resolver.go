package resolver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/resolver"

	// Every program with an etcd client gets the policies: without them
	// grpc says only "no supported policies found in config". The import
	// is one way: the balancer knows nothing of etcd.
	_ "github.com/etcdlb/etcdlb/balancer"
	"github.com/etcdlb/etcdlb/endpoint"
	"github.com/etcdlb/etcdlb/metrics"
)

// Scheme is the target scheme: etcd:///<service>.
const Scheme = "etcd"

// NewBuilder returns a resolver.Builder for etcd:///<service> targets that
// reads etcd through cli. The caller owns cli and closes it after every
// ClientConn using the builder.
func NewBuilder(cli *clientv3.Client, opts ...Option) resolver.Builder {
	return &builder{cli: cli, opts: newOptions(opts)}
}

type builder struct {
	cli  *clientv3.Client
	opts options
}

func (*builder) Scheme() string { return Scheme }

func (b *builder) Build(target resolver.Target, cc resolver.ClientConn, _ resolver.BuildOptions) (resolver.Resolver, error) {
	service := strings.TrimPrefix(target.Endpoint(), "/")
	if err := checkService(service); err != nil {
		return nil, fmt.Errorf("etcdlb: target %q: %v", target.String(), err)
	}
	ctx, cancel := context.WithCancel(b.cli.Ctx())
	r := &etcdResolver{
		cli:       b.cli,
		cc:        cc,
		opts:      b.opts,
		service:   service,
		svcPrefix: ServicePrefix(b.opts.prefix, service),
		ovrPrefix: OverridePrefix(b.opts.prefix, service),
		log:       b.opts.logger.With("service", service),
		ctx:       ctx,
		cancel:    cancel,
		resolveCh: make(chan struct{}, 1),
		entries:   make(map[string]*entry),
		overrides: make(map[string]uint32),
	}
	r.wg.Add(1)
	go r.run()
	return r, nil
}

// entry is one key under the service prefix.
type entry struct {
	key string
	id  string // last key segment
	val Value
	err error // non-nil: rejected

	ep       resolver.Endpoint // built from val, with weight epWeight
	epBuilt  bool
	epWeight uint32
}

// etcdResolver lists a service's keys, then watches them, and pushes every
// change to cc. All its state belongs to the run goroutine.
type etcdResolver struct {
	// Immutable.
	cli       *clientv3.Client
	cc        resolver.ClientConn
	opts      options
	service   string
	svcPrefix string
	ovrPrefix string
	log       *slog.Logger
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	resolveCh chan struct{}

	// Owned by run.
	entries   map[string]*entry // by key
	sorted    []*entry          // entries by address, then key; nil when stale
	overrides map[string]uint32 // by id
	known     int64             // highest revision seen
	term      uint64            // highest raft term seen
	pushed    []resolver.Endpoint
	sent      bool // an update or an error reached cc
	lastList  time.Time

	// After etcd lost its data, the endpoints it no longer has are held
	// (served as they were) until they re-register or heldUntil passes.
	lostData  bool              // the next list holds what it lacks
	held      map[string]*entry // by key; never in entries
	heldUntil time.Time
}

func (r *etcdResolver) ResolveNow(resolver.ResolveNowOptions) {
	select {
	case r.resolveCh <- struct{}{}:
	default:
	}
}

func (r *etcdResolver) Close() {
	r.cancel()
	r.wg.Wait()
}

// run alternates list and watch until Close.
func (r *etcdResolver) run() {
	defer r.wg.Done()
	failures := 0
	for r.ctx.Err() == nil {
		rev, err := r.list()
		if err != nil {
			if r.ctx.Err() != nil {
				return
			}
			r.etcdError("list", err)
			if !r.sent {
				// Never an empty set for a failed read; but say why RPCs wait.
				var pe *PermissionError
				if !errors.As(err, &pe) {
					err = fmt.Errorf("etcdlb: cannot list %q in etcd: %v", r.svcPrefix, withEtcdCause(r.cli, err))
				}
				r.cc.ReportError(err)
				r.sent = true
			}
			if !sleepCtx(r.ctx, r.opts.backoff(failures)) {
				return
			}
			failures++
			resetConnectBackoff(r.cli)
			continue
		}
		failed, progressed := r.watch(rev + 1)
		switch {
		case !failed:
			continue // ResolveNow: re-list at once
		case progressed:
			failures = 0
		default:
			failures++
		}
		if r.ctx.Err() != nil {
			return
		}
		if h := r.opts.resolverHooks.WatchRestart; h != nil {
			h(r.service)
		}
		if !sleepCtx(r.ctx, r.opts.backoff(failures)/4) {
			return
		}
	}
}

// resetConnectBackoff has cli reconnect now if it is waiting out gRPC's
// reconnect backoff, which grows to 120s while etcd is down and knows nothing
// of leases. Without it, an etcd back after an outage of a few seconds revives
// the leases for one TTL (plus an election timeout) while a registration's
// client may wait longer than that to reconnect: the leases expire and the
// registrations vanish at once; and a resolver's client may see changes only
// that much later. Called only before a retry of a failed request, so it
// connects no more often than the caller's own backoff.
func resetConnectBackoff(cli *clientv3.Client) {
	if conn := cli.ActiveConnection(); conn != nil {
		conn.ResetConnectBackoff()
	}
}

// list reads the endpoints and overrides at one revision, replaces the state
// with them and pushes it.
func (r *etcdResolver) list() (int64, error) {
	select {
	case <-r.resolveCh: // this list answers it
	default:
	}
	ctx, cancel := context.WithTimeout(r.ctx, r.opts.requestTimeout)
	defer cancel()
	resp, err := r.cli.Txn(ctx).Then(
		clientv3.OpGet(r.svcPrefix, clientv3.WithPrefix()),
		clientv3.OpGet(r.ovrPrefix, clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return 0, explain(ctx, r.cli, "list", err, readPrefix(r.svcPrefix), readPrefix(r.ovrPrefix))
	}
	r.lastList = time.Now()
	r.known, r.term = resp.Header.Revision, resp.Header.RaftTerm
	old := r.entries
	r.entries = make(map[string]*entry, len(old))
	r.sorted = nil
	r.overrides = make(map[string]uint32)
	for _, kv := range resp.Responses[0].GetResponseRange().Kvs {
		r.putEntry(kv, old)
	}
	for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
		r.putOverride(kv)
	}
	r.hold(old)
	r.synced()
	r.push()
	return resp.Header.Revision, nil
}

// hold keeps, after etcd lost its data, the valid endpoints of old (and
// those held already) that the new listing lacks, for the grace period.
func (r *etcdResolver) hold(old map[string]*entry) {
	if r.lostData && r.opts.dataLossGrace > 0 {
		r.lostData = false
		if r.held == nil {
			r.held = make(map[string]*entry)
		}
		for k, e := range old {
			if e.err == nil && e.epBuilt {
				r.held[k] = e
			}
		}
		r.heldUntil = time.Now().Add(r.opts.dataLossGrace)
	}
	for k := range r.held {
		if _, ok := r.entries[k]; ok {
			delete(r.held, k)
		}
	}
	if len(r.held) > 0 && time.Now().Before(r.heldUntil) {
		r.log.Warn("etcdlb: etcd lost endpoints; serving them until they re-register",
			"endpoints", len(r.held), "until", r.heldUntil.Format(time.RFC3339))
		return
	}
	r.held = nil
}

// heldExpiry fires when the held endpoints are to be dropped; nil if none.
func (r *etcdResolver) heldExpiry() <-chan time.Time {
	if len(r.held) == 0 {
		return nil
	}
	return time.After(time.Until(r.heldUntil))
}

// watch follows both prefixes from rev until the watch fails, ResolveNow
// asks for a re-list, or Close. It reports whether the watch failed, and
// whether it delivered anything first, to reset the backoff.
func (r *etcdResolver) watch(rev int64) (failed, progressed bool) {
	ctx, cancel := context.WithCancel(clientv3.WithRequireLeader(r.ctx))
	defer cancel()
	svcCh := r.cli.Watch(ctx, r.svcPrefix, clientv3.WithPrefix(), clientv3.WithRev(rev))
	ovrCh := r.cli.Watch(ctx, r.ovrPrefix, clientv3.WithPrefix(), clientv3.WithRev(rev))
	var resolveLater <-chan time.Time
	// A small read now and then shows a revision or a raft term that went
	// back: etcd lost its data, and a watch on a future revision would wait
	// for keys that never reach it. (etcd sends no progress to such a watch.)
	check := time.NewTicker(r.opts.revisionCheckEvery)
	defer check.Stop()
	heldExpiry := r.heldExpiry()
	for {
		var (
			wr  clientv3.WatchResponse
			ok  bool
			ovr bool
		)
		select {
		case <-r.ctx.Done():
			return true, progressed
		case wr, ok = <-svcCh:
		case wr, ok = <-ovrCh:
			ovr = true
		case <-r.resolveCh:
			wait := r.opts.resolveNowEvery - time.Since(r.lastList)
			if wait <= 0 {
				return false, progressed
			}
			if resolveLater == nil {
				resolveLater = time.After(wait)
			}
			continue
		case <-resolveLater:
			return false, progressed
		case <-check.C:
			if r.wentBack(ctx) {
				return true, progressed
			}
			continue
		case <-heldExpiry:
			heldExpiry = nil
			if len(r.held) > 0 { // else every one re-registered
				r.log.Warn("etcdlb: endpoints lost with etcd's data did not re-register; dropping them", "endpoints", len(r.held))
				r.held = nil
				r.push()
			}
			continue
		}
		// Apply this response and every one already waiting, then push once.
		for {
			if !ok || r.watchFailed(wr) {
				return true, progressed
			}
			progressed = true
			r.apply(wr.Events, ovr)
			select {
			case wr, ok = <-svcCh:
				ovr = false
				continue
			case wr, ok = <-ovrCh:
				ovr = true
				continue
			default:
			}
			break
		}
		r.synced()
		r.push()
	}
}

// wentBack reports whether etcd's revision or raft term is now below what
// the resolver has seen.
func (r *etcdResolver) wentBack(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, r.opts.requestTimeout)
	defer cancel()
	resp, err := r.cli.Get(ctx, r.svcPrefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		// Counted, so that an outage shows in the metrics even while the
		// watch waits quietly; logged at debug, as it repeats.
		r.log.Debug("etcdlb: revision check failed", "err", err)
		resetConnectBackoff(r.cli) // the watch waits on this connection too
		if h := r.opts.resolverHooks.EtcdError; h != nil {
			h(r.service, err)
		}
		return false
	}
	if r.timeTravel(resp.Header) {
		return true
	}
	r.synced() // a quiet service is in sync too
	return false
}

// timeTravel reports, and logs, a header older than what was seen.
func (r *etcdResolver) timeTravel(h *etcdserverpb.ResponseHeader) bool {
	if h.Revision >= r.known && h.RaftTerm >= r.term {
		r.known, r.term = h.Revision, h.RaftTerm
		return false
	}
	r.log.Warn("etcdlb: etcd went back in time (restored or lost its data); re-listing",
		"revision", h.Revision, "known_revision", r.known, "raft_term", h.RaftTerm, "known_raft_term", r.term)
	r.lostData = true
	return true
}

// watchFailed reports whether wr ends the watch, logging why.
func (r *etcdResolver) watchFailed(wr clientv3.WatchResponse) bool {
	err := wr.Err()
	switch {
	case err == nil:
		return r.timeTravel(wr.Header)
	case wr.CompactRevision != 0 || errors.Is(err, rpctypes.ErrCompacted):
		r.log.Info("etcdlb: watch compacted, re-listing", "compact_revision", wr.CompactRevision)
		if h := r.opts.resolverHooks.Compacted; h != nil {
			h(r.service)
		}
	default:
		r.etcdError("watch", explain(r.ctx, r.cli, "watch", err, readPrefix(r.svcPrefix), readPrefix(r.ovrPrefix)))
	}
	return true
}

func (r *etcdResolver) apply(events []*clientv3.Event, ovr bool) {
	for _, ev := range events {
		key := string(ev.Kv.Key)
		switch {
		case ovr && ev.Type == mvccpb.DELETE:
			delete(r.overrides, strings.TrimPrefix(key, r.ovrPrefix))
		case ovr:
			r.putOverride(ev.Kv)
		case ev.Type == mvccpb.DELETE:
			if _, ok := r.entries[key]; ok {
				delete(r.entries, key)
				r.sorted = nil
			}
		default:
			r.putEntry(ev.Kv, r.entries)
			delete(r.held, key) // re-registered: served from etcd again
		}
	}
}

// putEntry decodes kv into r.entries. old holds the previous entries, so that
// an unchanged rejected value is logged only once.
func (r *etcdResolver) putEntry(kv *mvccpb.KeyValue, old map[string]*entry) {
	key := string(kv.Key)
	id := strings.TrimPrefix(key, r.svcPrefix)
	if id == "" || strings.Contains(id, "/") {
		return // another service's key: svc/sub/x belongs to svc/sub
	}
	v, err := DecodeValue(key, id, kv.Value)
	prev := old[key]
	if err != nil && (prev == nil || prev.err == nil || prev.err.Error() != err.Error()) {
		r.rejected(err)
	}
	if cur, ok := r.entries[key]; ok {
		// In place, so that r.sorted stays valid unless the address moved.
		if cur.val.Addr != v.Addr {
			r.sorted = nil
		}
		*cur = entry{key: key, id: id, val: v, err: err}
		return
	}
	r.sorted = nil
	r.entries[key] = &entry{key: key, id: id, val: v, err: err}
}

func (r *etcdResolver) putOverride(kv *mvccpb.KeyValue) {
	key := string(kv.Key)
	id := strings.TrimPrefix(key, r.ovrPrefix)
	w, err := DecodeOverride(key, kv.Value)
	if err != nil {
		r.rejected(err)
		delete(r.overrides, id)
		return
	}
	r.overrides[id] = w
}

func (r *etcdResolver) rejected(err error) {
	var ve *ValueError
	if errors.As(err, &ve) {
		r.log.Warn("etcdlb: skipping endpoint", "key", ve.Key, "reason", ve.Reason, "detail", ve.Detail)
		if h := r.opts.resolverHooks.Rejected; h != nil {
			h(r.service, string(ve.Reason))
		}
	}
}

func (r *etcdResolver) etcdError(op string, err error) {
	if len(r.pushed) == 0 {
		r.log.Warn("etcdlb: etcd request failed; no endpoints to keep", "op", op, "err", err)
	} else {
		r.log.Warn("etcdlb: etcd request failed; keeping the last endpoints", "op", op, "endpoints", len(r.pushed), "err", err)
	}
	if h := r.opts.resolverHooks.EtcdError; h != nil {
		h(r.service, err)
	}
}

func (r *etcdResolver) synced() {
	if h := r.opts.resolverHooks.Synced; h != nil {
		h(r.service, time.Now())
	}
}

// endpoints returns the valid endpoints sorted by address. Of two keys with
// the same address, the first in key order wins.
func (r *etcdResolver) endpoints() (eps []resolver.Endpoint, rejected int) {
	if r.sorted == nil {
		r.sorted = slices.SortedFunc(maps.Values(r.entries), func(a, b *entry) int {
			if c := strings.Compare(a.val.Addr, b.val.Addr); c != 0 {
				return c
			}
			return strings.Compare(a.key, b.key)
		})
	}
	eps = make([]resolver.Endpoint, 0, len(r.sorted))
	prev := ""
	for _, e := range r.sorted {
		if e.err != nil || e.val.Addr == prev {
			rejected++
			continue
		}
		prev = e.val.Addr
		w := e.val.Weight
		if ow, ok := r.overrides[e.id]; ok {
			w = ow
		}
		if !e.epBuilt || e.epWeight != w {
			a := e.val.Attrs()
			a.Weight = w
			e.ep, e.epBuilt, e.epWeight = endpoint.New(e.val.Addr, a), true, w
		}
		eps = append(eps, e.ep)
	}
	if len(r.held) > 0 {
		eps = r.withHeld(eps)
	}
	return eps, rejected
}

// withHeld adds to eps, sorted by address, the held endpoints whose address
// etcd does not have again under another key.
func (r *etcdResolver) withHeld(eps []resolver.Endpoint) []resolver.Endpoint {
	have := make(map[string]bool, len(eps))
	for _, ep := range eps {
		have[ep.Addresses[0].Addr] = true
	}
	for _, e := range r.held {
		if !have[e.val.Addr] {
			have[e.val.Addr] = true
			eps = append(eps, e.ep)
		}
	}
	slices.SortFunc(eps, func(a, b resolver.Endpoint) int {
		return strings.Compare(a.Addresses[0].Addr, b.Addresses[0].Addr)
	})
	return eps
}

// push sends the state to cc unless cc already has it.
func (r *etcdResolver) push() {
	eps, rejected := r.endpoints()
	if r.sent && r.pushed != nil && sameEndpoints(eps, r.pushed) {
		return
	}
	r.pushed = eps
	r.sent = true
	addrs := make([]resolver.Address, len(eps))
	for i, ep := range eps {
		addrs[i] = ep.Addresses[0]
	}
	state := resolver.State{Endpoints: eps, Addresses: addrs}
	if r.opts.metrics != nil {
		state = metrics.Attach(state, r.opts.metrics)
	}
	var why error
	if len(eps) == 0 {
		msg := fmt.Sprintf("etcdlb: service %q has no endpoints in etcd under %q", r.service, r.svcPrefix)
		if rejected > 0 {
			msg += fmt.Sprintf(" (%d rejected, see the log)", rejected)
		}
		why = errors.New(msg)
		state = endpoint.WithNoEndpointsReason(state, why) // for the first calls
	}
	err := r.cc.UpdateState(state)
	if h := r.opts.resolverHooks.Update; h != nil {
		h(r.service, len(eps))
	}
	if why != nil {
		r.cc.ReportError(why)
	} else if err != nil {
		r.log.Debug("etcdlb: UpdateState", "err", err)
	}
}

func sameEndpoints(a, b []resolver.Endpoint) bool {
	return slices.EqualFunc(a, b, func(x, y resolver.Endpoint) bool {
		return x.Addresses[0].Addr == y.Addresses[0].Addr && x.Attributes.Equal(y.Attributes)
	})
}
