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
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/resolver"

	// Every program with an etcd client gets the policies: without them
	// grpc says only "no supported policies found in config". The import
	// is one way: the balancer knows nothing of etcd.
	_ "github.com/etcdlb/etcdlb/balancer"
	"github.com/etcdlb/etcdlb/endpoint"
	"github.com/etcdlb/etcdlb/internal/etcdutil"
	"github.com/etcdlb/etcdlb/keyspace"
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
	if err := keyspace.CheckService(service); err != nil {
		return nil, fmt.Errorf("etcdlb: target %q: %v", target.String(), err)
	}
	ctx, cancel := context.WithCancel(b.cli.Ctx())
	w := newWatcher(b.cli, b.opts.Prefix, service)
	r := &etcdResolver{
		cli:       b.cli,
		cc:        cc,
		opts:      b.opts,
		obs:       b.opts.observer,
		service:   service,
		w:         w,
		svcPrefix: w.svcPrefix,
		log:       b.opts.Logger.With("service", service),
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
	val keyspace.Value
	err error // non-nil: rejected

	ep       resolver.Endpoint // built from val, with weight epWeight
	epBuilt  bool
	epWeight uint32
}

// etcdResolver lists a service's keys, then watches them, and pushes every
// change to cc. Apart from the immutable fields, all its state belongs to
// the run goroutine: there is no lock.
type etcdResolver struct {
	// Immutable.
	cli       *clientv3.Client
	cc        resolver.ClientConn
	opts      options
	obs       observer
	service   string
	w         *Watcher
	svcPrefix string
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
			r.listFailed(err)
			if !etcdutil.Sleep(r.ctx, r.opts.Backoff(failures)) {
				return
			}
			failures++
			etcdutil.ResetConnectBackoff(r.cli)
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
		r.obs.ResolverWatchRestarted(r.service)
		if !etcdutil.Sleep(r.ctx, r.opts.Backoff(failures)/4) {
			return
		}
	}
}

// listFailed counts and logs a failed list, and tells cc why while it has
// nothing: never an empty set for a failed read, but RPCs say why they wait.
func (r *etcdResolver) listFailed(err error) {
	r.etcdError("list", err)
	if r.sent {
		return
	}
	var pe *PermissionError
	if !errors.As(err, &pe) {
		err = fmt.Errorf("etcdlb: cannot list %q in etcd: %v", r.svcPrefix, etcdutil.WithCause(r.cli, err))
	}
	r.cc.ReportError(err)
	r.sent = true
}

// list reads the endpoints and overrides at one revision, replaces the state
// with them and pushes it.
func (r *etcdResolver) list() (int64, error) {
	select {
	case <-r.resolveCh: // this list answers it
	default:
	}
	ctx, cancel := context.WithTimeout(r.ctx, r.opts.RequestTimeout)
	defer cancel()
	h, changes, err := r.w.List(ctx)
	if err != nil {
		return 0, err
	}
	r.lastList = time.Now()
	r.known, r.term = h.Revision, h.RaftTerm
	old := r.entries
	r.entries = make(map[string]*entry, len(old))
	r.sorted = nil
	r.overrides = make(map[string]uint32)
	for _, c := range changes {
		if c.Override {
			r.putOverride(c)
		} else {
			r.putEntry(c, old)
		}
	}
	r.hold(old)
	r.synced()
	r.push()
	return h.Revision, nil
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
	s := r.w.Watch(r.ctx, rev)
	defer s.Close()
	var resolveLater <-chan time.Time
	// A small read now and then shows a revision or a raft term that went
	// back: etcd lost its data, and a watch on a future revision would wait
	// for keys that never reach it. (etcd sends no progress to such a watch.)
	check := time.NewTicker(r.opts.revisionCheckEvery)
	defer check.Stop()
	heldExpiry := r.heldExpiry()
	for {
		select {
		case <-r.ctx.Done():
			return true, progressed
		case b, ok := <-s.Batches():
			applied, ended := r.applyBatches(b, ok, s.Batches())
			progressed = progressed || applied
			if ended {
				return true, progressed
			}
		case <-r.resolveCh:
			wait := r.opts.resolveNowEvery - time.Since(r.lastList)
			if wait <= 0 {
				return false, progressed
			}
			if resolveLater == nil {
				resolveLater = time.After(wait)
			}
		case <-resolveLater:
			return false, progressed
		case <-check.C:
			if r.wentBack() {
				return true, progressed
			}
		case <-heldExpiry:
			heldExpiry = nil
			r.dropHeld()
		}
	}
}

// applyBatches applies b and every batch already waiting on more, then
// pushes once. It reports whether it applied any, and whether the watch
// ended (then nothing is pushed: the re-list that follows pushes).
func (r *etcdResolver) applyBatches(b Batch, ok bool, more <-chan Batch) (applied, ended bool) {
	for {
		if !ok || r.watchFailed(b) {
			return applied, true
		}
		applied = true
		r.apply(b.Changes)
		select {
		case b, ok = <-more:
			continue
		default:
		}
		break
	}
	r.synced()
	r.push()
	return true, false
}

// dropHeld drops the endpoints held since etcd lost its data that did not
// re-register in time.
func (r *etcdResolver) dropHeld() {
	if len(r.held) > 0 { // else every one re-registered
		r.log.Warn("etcdlb: endpoints lost with etcd's data did not re-register; dropping them", "endpoints", len(r.held))
		r.held = nil
		r.push()
	}
}

// wentBack reports whether etcd's revision or raft term is now below what
// the resolver has seen.
func (r *etcdResolver) wentBack() bool {
	ctx, cancel := context.WithTimeout(clientv3.WithRequireLeader(r.ctx), r.opts.RequestTimeout)
	defer cancel()
	resp, err := r.cli.Get(ctx, r.svcPrefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		// Counted, so that an outage shows in the metrics even while the
		// watch waits quietly; logged at debug, as it repeats.
		r.log.Debug("etcdlb: revision check failed", "err", err)
		etcdutil.ResetConnectBackoff(r.cli) // the watch waits on this connection too
		r.obs.ResolverEtcdError(r.service, err)
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

// watchFailed reports whether b ends the watch, logging why.
func (r *etcdResolver) watchFailed(b Batch) bool {
	switch {
	case b.Err == nil:
		return r.timeTravel(b.Header)
	case errors.Is(b.Err, ErrWatchClosed):
	case b.Compacted:
		r.log.Info("etcdlb: watch compacted, re-listing", "compact_revision", b.CompactRevision)
		r.obs.ResolverCompacted(r.service)
	default:
		r.etcdError("watch", b.Err)
	}
	return true
}

func (r *etcdResolver) apply(changes []Change) {
	for _, c := range changes {
		switch {
		case c.Override && c.Deleted:
			delete(r.overrides, c.ID)
		case c.Override:
			r.putOverride(c)
		case c.Deleted:
			if _, ok := r.entries[c.Key]; ok {
				delete(r.entries, c.Key)
				r.sorted = nil
			}
		default:
			r.putEntry(c, r.entries)
			delete(r.held, c.Key) // re-registered: served from etcd again
		}
	}
}

// putEntry puts c into r.entries. old holds the previous entries, so that
// an unchanged rejected value is logged only once.
func (r *etcdResolver) putEntry(c Change, old map[string]*entry) {
	prev := old[c.Key]
	if c.Err != nil && (prev == nil || prev.err == nil || prev.err.Error() != c.Err.Error()) {
		r.rejected(c.Err)
	}
	e := entry{key: c.Key, id: c.ID, val: c.Value, err: c.Err}
	if cur, ok := r.entries[c.Key]; ok {
		// In place, so that r.sorted stays valid unless the address moved.
		if cur.val.Addr != e.val.Addr {
			r.sorted = nil
		}
		*cur = e
		return
	}
	r.sorted = nil
	r.entries[c.Key] = &e
}

func (r *etcdResolver) putOverride(c Change) {
	if c.Err != nil {
		r.rejected(c.Err)
		delete(r.overrides, c.ID)
		return
	}
	r.overrides[c.ID] = c.Weight
}

func (r *etcdResolver) rejected(err error) {
	var ve *keyspace.ValueError
	if errors.As(err, &ve) {
		r.log.Warn("etcdlb: skipping endpoint", "key", ve.Key, "reason", ve.Reason, "detail", ve.Detail)
		r.obs.ResolverRejected(r.service, string(ve.Reason))
	}
}

func (r *etcdResolver) etcdError(op string, err error) {
	if len(r.pushed) == 0 {
		r.log.Warn("etcdlb: etcd request failed; no endpoints to keep", "op", op, "err", err)
	} else {
		r.log.Warn("etcdlb: etcd request failed; keeping the last endpoints", "op", op, "endpoints", len(r.pushed), "err", err)
	}
	r.obs.ResolverEtcdError(r.service, err)
}

func (r *etcdResolver) synced() { r.obs.ResolverSynced(r.service, time.Now()) }

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
	r.obs.ResolverUpdated(r.service, len(eps))
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

// PermissionError is etcd's "permission denied" for a request etcdlb made,
// naming the key or prefix, the user and the permission the user lacks.
type PermissionError = etcdutil.PermissionError
