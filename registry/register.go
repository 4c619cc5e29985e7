package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcdlb/etcdlb/internal/etcdutil"
	"github.com/etcdlb/etcdlb/keyspace"

	"github.com/etcdlb/etcdlb/endpoint"
)

// Registration is what a server registers about itself.
type Registration struct {
	Service string
	// Addr is the host:port clients dial; it is also the key's last segment.
	// An unspecified IP (0.0.0.0, ::) is refused: no client can dial it.
	Addr string
	// Weight is the server's own weight. 0 means endpoint.DefaultWeight (1),
	// so that a Registration that names no weight gets traffic; to register
	// with weight 0, set Drained.
	Weight uint32
	// Drained registers weight 0: clients pick the server only while no other
	// endpoint is ready, until SetWeight gives it a weight. Weight must be 0.
	Drained  bool
	Zone     string
	Metadata map[string]string
}

// ErrKeyHeld is why Register refuses a key that another registration's
// lease holds; see WithTakeover.
var ErrKeyHeld = errors.New("held by another registration")

// heldError names the key, the lease that holds it and the remedy.
type heldError struct {
	key   string
	lease clientv3.LeaseID
	ttl   int64 // seconds left on the lease; -1 unknown
}

func (e *heldError) Error() string {
	ttl := ""
	if e.ttl >= 0 {
		ttl = fmt.Sprintf(", %ds left", e.ttl)
	}
	return fmt.Sprintf("%s is %v: lease %x%s (another server registered this address, "+
		"or this server's previous run crashed less than a TTL ago); "+
		"pass registry.WithTakeover() to replace it", e.key, ErrKeyHeld, int64(e.lease), ttl)
}

func (e *heldError) Unwrap() error { return ErrKeyHeld }

// RegistrationState is where a Registrar stands.
type RegistrationState int

const (
	// Registering: the key is not known to be in etcd; the Registrar is
	// granting a lease and writing it, with backoff.
	Registering RegistrationState = iota
	// Registered: the key is in etcd under a lease that is kept alive.
	Registered
	// Closed: Deregister or Close was called, or the etcd client closed.
	Closed
)

func (s RegistrationState) String() string {
	switch s {
	case Registering:
		return "registering"
	case Registered:
		return "registered"
	case Closed:
		return "closed"
	}
	return fmt.Sprintf("RegistrationState(%d)", int(s))
}

// Registrar keeps one server's key in etcd under a lease until Deregister:
// it renews the lease, re-grants it and rewrites the key whenever it is lost,
// and turns an operator's in-place edit of the key's weight into an override.
//
// Its run goroutine (run, register, serve) is the only one that talks to
// etcd for it, apart from Deregister after run has ended. mu guards the
// fields below it and is a leaf: it is never held while calling etcd, the
// observer or the logger, nor while waiting on a channel.
type Registrar struct {
	// Immutable.
	cli    *clientv3.Client
	opts   options
	key    string
	ovrKey string
	idxKey string       // the service index's key of this registration
	reg    Registration // Service and Addr only
	log    *slog.Logger
	ctx    context.Context // ends the run loop
	cancel context.CancelFunc
	done   chan struct{} // closed when run returns
	wake   chan struct{} // the wanted value changed

	// Guarded by mu.
	mu         sync.Mutex
	val        keyspace.Value // what the key should hold
	gen        uint64
	writtenGen uint64        // gen of the value last written
	written    chan struct{} // closed and replaced on every write
	state      RegistrationState
	stateCh    chan struct{} // closed and replaced on every state change
	lease      clientv3.LeaseID
	lastErr    error
	writeErr   error // why the wanted value is not in etcd yet; nil once it is
}

// Register writes reg under a lease and keeps it there until Deregister or
// Close, or until cli is closed. It returns once the key is first written. It
// refuses a key that another registration's lease holds (ErrKeyHeld) unless
// WithTakeover is given. Until etcd answers it retries; if ctx ends first it
// gives up and returns ctx's error wrapping the last cause (e.g. "grant
// lease: ... connection refused"). With context.Background() it blocks until
// etcd answers: give it a timeout.
func Register(ctx context.Context, cli *clientv3.Client, reg Registration, opts ...Option) (*Registrar, error) {
	val, err := wantedValue(reg)
	if err != nil {
		return nil, err
	}
	o := newOptions(opts)
	r := &Registrar{
		cli:     cli,
		opts:    o,
		key:     keyspace.EndpointKey(o.Prefix, reg.Service, reg.Addr),
		ovrKey:  keyspace.OverrideKey(o.Prefix, reg.Service, reg.Addr),
		idxKey:  keyspace.IndexKey(o.Prefix, reg.Service, reg.Addr),
		reg:     Registration{Service: reg.Service, Addr: reg.Addr},
		log:     o.Logger.With("service", reg.Service, "addr", reg.Addr),
		done:    make(chan struct{}),
		wake:    make(chan struct{}, 1),
		val:     val,
		gen:     1,
		written: make(chan struct{}),
		stateCh: make(chan struct{}),
	}
	r.ctx, r.cancel = context.WithCancel(cli.Ctx())
	r.setState(Registering)
	go r.run()
	if err := r.firstWrite(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

// wantedValue checks reg and returns the value its key is to hold.
func wantedValue(reg Registration) (keyspace.Value, error) {
	if err := keyspace.CheckService(reg.Service); err != nil {
		return keyspace.Value{}, err
	}
	if err := checkDialable(reg.Addr); err != nil {
		return keyspace.Value{}, fmt.Errorf("etcdlb: register %s: %w", reg.Addr, err)
	}
	w := reg.Weight
	switch {
	case reg.Drained && w != 0:
		return keyspace.Value{}, fmt.Errorf("etcdlb: register %s: Drained with Weight %d; a drained registration has weight 0", reg.Addr, w)
	case w == 0 && !reg.Drained:
		w = endpoint.DefaultWeight
	}
	val := keyspace.Value{Addr: reg.Addr, Weight: w, Zone: reg.Zone, Metadata: maps.Clone(reg.Metadata)}
	if _, err := keyspace.EncodeValue(val); err != nil {
		return keyspace.Value{}, err
	}
	return val, nil
}

// firstWrite waits until the key is first written, the Registrar gives up
// (a key another registration holds, the client closed), or ctx ends; in
// the last case it stops the Registrar.
func (r *Registrar) firstWrite(ctx context.Context) error {
	for {
		r.mu.Lock()
		st, ch, err := r.state, r.stateCh, r.lastErr
		r.mu.Unlock()
		switch st {
		case Registered:
			return nil
		case Closed:
			if refused(err) {
				return fmt.Errorf("etcdlb: register: %w", err)
			}
			return fmt.Errorf("etcdlb: register %s: etcd client closed", r.key)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			r.cancel()
			<-r.done
			r.mu.Lock()
			err := r.lastErr // fresh: the attempt that ctx cut short set it
			r.mu.Unlock()
			if err == nil { // ctx ended during the first attempt
				err = etcdutil.Unreachable(r.cli)
			}
			if err == nil {
				return fmt.Errorf("etcdlb: register %s: %w", r.key, ctx.Err())
			}
			return fmt.Errorf("etcdlb: register %s: %w; last error: %w", r.key, ctx.Err(), err)
		}
	}
}

// Key returns the etcd key of the registration.
func (r *Registrar) Key() string { return r.key }

// State returns the current state.
func (r *Registrar) State() RegistrationState {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.state
}

// Lease returns the lease the key was last written under.
func (r *Registrar) Lease() clientv3.LeaseID {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lease
}

// SetWeight changes the registration's own weight (an operator override
// still wins). It waits until etcd has it or ctx ends; either way the new
// weight is kept and written as soon as etcd can take it.
func (r *Registrar) SetWeight(ctx context.Context, weight uint32) error {
	if weight > endpoint.MaxWeight {
		return fmt.Errorf("etcdlb: weight %d above %d", weight, endpoint.MaxWeight)
	}
	return r.update(ctx, func(v *keyspace.Value) { v.Weight = weight })
}

// SetZone changes the registration's zone, as SetWeight does its weight.
func (r *Registrar) SetZone(ctx context.Context, zone string) error {
	return r.update(ctx, func(v *keyspace.Value) { v.Zone = zone })
}

// Drain sets the registration's own weight to 0: clients stop picking it
// while any other endpoint is ready, and the key stays.
func (r *Registrar) Drain(ctx context.Context) error { return r.SetWeight(ctx, 0) }

func (r *Registrar) update(ctx context.Context, f func(*keyspace.Value)) error {
	r.mu.Lock()
	if r.state == Closed {
		r.mu.Unlock()
		return errors.New("etcdlb: registration closed")
	}
	f(&r.val)
	r.gen++
	gen := r.gen
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
	for {
		r.mu.Lock()
		ok, ch, st := r.writtenGen >= gen, r.written, r.state
		r.mu.Unlock()
		if ok {
			return nil
		}
		if st == Closed {
			return errors.New("etcdlb: registration closed")
		}
		select {
		case <-ch:
		case <-r.done:
		case <-ctx.Done():
			r.mu.Lock()
			werr := r.writeErr
			r.mu.Unlock()
			if werr == nil {
				werr = ctx.Err()
			}
			return fmt.Errorf("etcdlb: %s not yet written (will be): %w", r.key, werr)
		}
	}
}

// Deregister stops the registration: it deletes the key first, so clients
// stop picking the server while it still serves, then revokes the lease,
// which deletes the key too if the delete failed. An operator override of
// the endpoint is kept. If etcd cannot be reached the key disappears when its
// lease expires.
func (r *Registrar) Deregister(ctx context.Context) error {
	r.cancel()
	<-r.done
	r.mu.Lock()
	lease := r.lease
	r.mu.Unlock()
	if lease == 0 {
		return nil
	}
	_, err := r.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.LeaseValue(r.key), "=", lease)).
		Then(clientv3.OpDelete(r.key), clientv3.OpDelete(r.idxKey)).Commit()
	if err != nil {
		err = etcdutil.Explain(ctx, r.cli, "delete", err, etcdutil.Read(r.key), etcdutil.Write(r.key), etcdutil.Write(r.idxKey))
		r.log.Warn("etcdlb: cannot delete the key; revoking its lease", "op", "delete", "key", r.key, "err", err)
	}
	if _, rerr := r.cli.Revoke(ctx, lease); rerr != nil {
		rerr = etcdutil.Explain(ctx, r.cli, "revoke the lease", rerr, etcdutil.Write(r.key), etcdutil.Write(r.idxKey))
		r.log.Warn("etcdlb: cannot revoke the lease; the key stays until it expires", "op", "revoke", "key", r.key, "lease", lease, "err", rerr)
		err = errors.Join(err, rerr)
	} else {
		err = nil // the revoke deleted the key
	}
	if err != nil {
		return fmt.Errorf("etcdlb: deregister %s: %w", r.key, err)
	}
	r.mu.Lock()
	r.lease = 0 // done: a second Deregister has nothing to do
	r.mu.Unlock()
	return nil
}

// Close is Deregister bounded by the request timeout.
func (r *Registrar) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), r.opts.RequestTimeout)
	defer cancel()
	return r.Deregister(ctx)
}

// refused reports whether a first registration failed for a reason that
// retrying does not change: the key is held by another registration, or
// etcd denies this user a permission it needs (the error names which).
// Register returns such an error at once rather than when its context ends.
func refused(err error) bool {
	return errors.Is(err, ErrKeyHeld) || errors.Is(err, rpctypes.ErrPermissionDenied)
}

func (r *Registrar) setState(s RegistrationState) {
	r.mu.Lock()
	r.state = s
	close(r.stateCh)
	r.stateCh = make(chan struct{})
	r.mu.Unlock()
	r.opts.observer.RegistrationState(r.reg.Service, r.reg.Addr, s.String())
}

// run registers, serves the lease until it is lost, and starts again, until
// the Registrar or the client is closed.
func (r *Registrar) run() {
	defer close(r.done)
	defer r.setState(Closed)
	failures := 0
	var lease clientv3.LeaseID // the last one the key was written under
	for registered := false; ; {
		if registered || failures > 0 {
			etcdutil.ResetConnectBackoff(r.cli)
		}
		newLease, rev, err := r.register(lease)
		if r.ctx.Err() != nil {
			return
		}
		if err != nil {
			err = etcdutil.WithCause(r.cli, err)
			r.mu.Lock()
			r.lastErr = err
			r.mu.Unlock()
			if !registered && refused(err) {
				return // Register returns it: retrying cannot help
			}
			r.log.Warn("etcdlb: registration failed; retrying", "err", err)
			r.opts.observer.LeaseFailed(r.reg.Service, r.reg.Addr, err)
			if !etcdutil.Sleep(r.ctx, r.opts.Backoff(failures)) {
				return
			}
			failures++
			continue
		}
		failures, lease = 0, newLease
		if registered {
			r.log.Info("etcdlb: re-registered", "lease", leaseHex(lease))
			r.opts.observer.Reregistered(r.reg.Service, r.reg.Addr)
		}
		registered = true
		r.setState(Registered)
		r.serve(lease, rev)
		if r.ctx.Err() != nil {
			return
		}
		r.setState(Registering)
	}
}

// register grants a lease and claims the key under it; prev is the lease it
// was last written under.
func (r *Registrar) register(prev clientv3.LeaseID) (clientv3.LeaseID, int64, error) {
	ctx, cancel := context.WithTimeout(r.ctx, r.opts.RequestTimeout)
	defer cancel()
	g, err := r.cli.Grant(ctx, int64(r.opts.ttl.Round(time.Second)/time.Second))
	if err != nil {
		return 0, 0, fmt.Errorf("grant lease: %w", err)
	}
	r.mu.Lock()
	r.lease = g.ID
	r.mu.Unlock()
	rev, err := r.claim(ctx, g.ID, prev)
	if err != nil {
		r.revoke(g.ID)
		return 0, 0, err
	}
	return g.ID, rev, nil
}

// claim writes the key under lease if no other registration holds it: the key
// is absent, on no lease, or on prev, this Registrar's previous lease (lost,
// or still alive on the server though its keepalive ended); with
// WithTakeover, whoever holds it.
func (r *Registrar) claim(ctx context.Context, lease, prev clientv3.LeaseID) (int64, error) {
	rev, err := r.write(ctx, lease, clientv3.Compare(clientv3.LeaseValue(r.key), "=", 0))
	if !errors.Is(err, errConflict) {
		return rev, err
	}
	kv, _, err := r.get(ctx)
	if err != nil || kv == nil || kv.Lease == 0 {
		return 0, errConflict // changed meanwhile: the next attempt sees it
	}
	holder := clientv3.LeaseID(kv.Lease)
	own := holder == prev
	if !own && !r.opts.takeover {
		held := &heldError{key: r.key, lease: holder, ttl: -1}
		if ttl, err := r.cli.TimeToLive(ctx, holder); err == nil {
			held.ttl = ttl.TTL
		}
		return 0, held
	}
	if !own {
		r.log.Warn("etcdlb: taking over the key from another registration", "lease", leaseHex(holder))
	}
	return r.write(ctx, lease, clientv3.Compare(clientv3.LeaseValue(r.key), "=", kv.Lease))
}

// write puts the wanted value and the index key under lease, in one
// transaction, if cmps hold (none: always). It returns the key's new mod
// revision, or errConflict if a comparison failed. It records the outcome
// for update's callers: writtenGen and written on success, writeErr on an
// etcd error.
func (r *Registrar) write(ctx context.Context, lease clientv3.LeaseID, cmps ...clientv3.Cmp) (int64, error) {
	r.mu.Lock()
	val, gen := r.val, r.gen
	r.mu.Unlock()
	b, err := keyspace.EncodeValue(val)
	if err != nil {
		return 0, err
	}
	put := clientv3.OpPut(r.key, string(b), clientv3.WithLease(lease))
	idx := clientv3.OpPut(r.idxKey, "", clientv3.WithLease(lease))
	resp, err := r.cli.Txn(ctx).If(cmps...).Then(put, idx).Commit()
	if err != nil {
		needs := []etcdutil.Access{etcdutil.Write(r.key), etcdutil.Write(r.idxKey)}
		if len(cmps) > 0 {
			needs = append([]etcdutil.Access{etcdutil.Read(r.key)}, needs...) // the compare reads
		}
		if err = etcdutil.Explain(ctx, r.cli, "put", err, needs...); !errors.Is(err, rpctypes.ErrPermissionDenied) {
			err = fmt.Errorf("put %s: %w", r.key, err)
		}
		r.mu.Lock()
		r.writeErr = err
		r.mu.Unlock()
		return 0, err
	}
	if !resp.Succeeded {
		return 0, errConflict
	}
	r.mu.Lock()
	r.writtenGen = max(r.writtenGen, gen)
	r.writeErr = nil
	close(r.written)
	r.written = make(chan struct{})
	r.mu.Unlock()
	return resp.Header.Revision, nil
}

var errConflict = errors.New("key changed by someone else")

// serve keeps lease alive and the key as wanted until the lease or the key is
// lost, or the Registrar closes. Nothing in its loop waits on etcd for longer
// than a request timeout, so a lost lease is always noticed.
func (r *Registrar) serve(lease clientv3.LeaseID, rev int64) {
	ctx, cancel := context.WithCancel(r.ctx)
	defer cancel()
	ka, err := r.cli.KeepAlive(ctx, lease)
	if err != nil {
		r.leaseFailed(lease, err)
		return
	}
	s := &serving{r: r, ctx: ctx, lease: lease, rev: rev}
	s.watchFrom(rev + 1)
	for {
		lost := false
		select {
		case <-ctx.Done():
			return
		case s.wch = <-s.pending:
			s.pending = nil
		case _, ok := <-ka:
			lost = s.renewed(ok)
		case wr, ok := <-s.wch:
			lost = s.watched(wr, ok)
		case <-s.recheck:
			lost = s.reread()
		case <-r.wake:
			s.dirty = true
		case <-s.retry:
			s.retry = nil
		}
		if lost {
			return
		}
		s.writeIfDue()
	}
}

// serving is the state of one serve: one lease, the watch of the key, and
// whether the key holds what it should. It belongs to serve's goroutine.
type serving struct {
	r     *Registrar
	ctx   context.Context
	lease clientv3.LeaseID

	rev      int64                   // the key's mod revision last seen or written
	wch      clientv3.WatchChan      // the key's watch; nil while none works
	pending  chan clientv3.WatchChan // the watch being made; nil when none
	dirty    bool                    // the wanted value is not in etcd yet
	retry    <-chan time.Time        // next write attempt
	recheck  <-chan time.Time        // next read of the key
	unkept   bool                    // an edit's weight is not yet an override
	failures int                     // in a row, for the backoff
}

// watchFrom watches the key from revision from. Watch blocks until etcd
// takes the request, and the lease must be kept alive meanwhile, so the
// watch is made on the side and arrives on pending.
func (s *serving) watchFrom(from int64) {
	pending := make(chan clientv3.WatchChan, 1)
	s.wch, s.pending = nil, pending
	go func() {
		pending <- s.r.cli.Watch(clientv3.WithRequireLeader(s.ctx), s.r.key, clientv3.WithRev(from))
	}()
}

// renewed handles a keepalive response; ok false means the lease is lost.
// It reports whether it is.
func (s *serving) renewed(ok bool) (lost bool) {
	if !ok {
		s.r.leaseFailed(s.lease, errors.New("lease expired or revoked"))
		return true
	}
	s.r.opts.observer.LeaseRenewed(s.r.reg.Service, s.r.reg.Addr)
	return false
}

// watched handles a watch response: the key's changes, or the end of the
// watch (cancelled or compacted), after which the key is read and watched
// again. It reports whether the key is lost.
func (s *serving) watched(wr clientv3.WatchResponse, ok bool) (lost bool) {
	if !ok || wr.Err() != nil {
		if ok && !wr.IsProgressNotify() && wr.CompactRevision == 0 {
			err := etcdutil.Explain(s.ctx, s.r.cli, "watch", wr.Err(), etcdutil.Read(s.r.key))
			s.r.log.Warn("etcdlb: cannot watch the key; an edit of it is seen only when read", "op", "watch", "key", s.r.key, "err", err)
		}
		s.wch, s.recheck = nil, time.After(0)
		return false
	}
	for _, ev := range wr.Events {
		if ev.Kv.ModRevision == s.rev {
			continue // our own write
		}
		if ev.Type == mvccpb.DELETE {
			return s.keyDeleted()
		}
		s.rev = ev.Kv.ModRevision
		s.edited(ev.Kv)
	}
	return false
}

// reread reads the key, to see an edit the watch may have missed, and
// watches it again if the watch failed. It reports whether the key is lost.
func (s *serving) reread() (lost bool) {
	s.recheck = nil
	kv, now, err := s.r.get(s.ctx)
	if err != nil {
		s.r.log.Warn("etcdlb: cannot read the key; an edit of it is not seen", "op", "get", "key", s.r.key, "err", err)
		s.backoffRecheck()
		return false
	}
	if kv == nil {
		return s.keyDeleted()
	}
	if s.wch == nil && s.pending == nil {
		s.watchFrom(now + 1) // not kv.ModRevision + 1: it may be compacted
	}
	if kv.ModRevision != s.rev || s.unkept {
		s.rev = kv.ModRevision
		s.edited(kv)
	}
	return false
}

// edited handles someone else's write of the key (see foreign): the key is
// to be rewritten, unless the edit's weight could not be kept yet; then it
// is left as it is and read again after a backoff.
func (s *serving) edited(kv *mvccpb.KeyValue) {
	rewrite, err := s.r.foreign(s.ctx, kv, s.lease)
	if s.unkept = err != nil; s.unkept {
		s.backoffRecheck()
	}
	s.dirty = s.dirty || rewrite
}

func (s *serving) backoffRecheck() {
	s.recheck = time.After(s.r.opts.Backoff(s.failures))
	s.failures++
}

// keyDeleted gives up the lease of a key that someone deleted: the key is
// written again under a new one.
func (s *serving) keyDeleted() (lost bool) {
	s.r.leaseFailed(s.lease, errKeyDeleted)
	s.r.revoke(s.lease)
	return true
}

// writeIfDue writes the wanted value if it is not in etcd, no retry is
// waited for, and no operator's weight would be lost by it.
func (s *serving) writeIfDue() {
	if !s.dirty || s.retry != nil || s.unkept {
		return
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.r.opts.RequestTimeout)
	newRev, err := s.r.write(ctx, s.lease, clientv3.Compare(clientv3.ModRevision(s.r.key), "=", s.rev))
	cancel()
	switch {
	case err == nil:
		s.rev, s.dirty, s.failures = newRev, false, 0
	case errors.Is(err, errConflict):
		// The watch brings the other write; then the value is written
		// again against its revision.
		s.retry = time.After(s.r.opts.BackoffMin)
	default:
		s.r.log.Warn("etcdlb: update failed; retrying", "op", "put", "key", s.r.key, "err", err)
		s.retry = time.After(s.r.opts.Backoff(s.failures))
		s.failures++
	}
}

// foreign handles a write to the key by someone else, and reports whether
// the key must be written again, or an error if the edit's weight could not
// be kept yet (the key is then left as it is, to be looked at again). An operator's edit (the key left on this
// lease with put --ignore-lease, or taken off any lease) has its weight kept
// as an override, so that it outlives this lease, and the key is to be
// rewritten with the registration's own value under the lease. A key on
// another lease belongs to another registration of the same address: it is
// left alone, and if that lease ends, the delete brings this one back.
func (r *Registrar) foreign(ctx context.Context, kv *mvccpb.KeyValue, lease clientv3.LeaseID) (bool, error) {
	if kv.Lease != 0 && kv.Lease != int64(lease) {
		r.log.Warn("etcdlb: key written under another lease; another registration of this address?",
			"lease", leaseHex(clientv3.LeaseID(kv.Lease)))
		return false, nil
	}
	v, err := keyspace.DecodeValue(r.key, r.reg.Addr, kv.Value)
	r.mu.Lock()
	own := r.val
	r.mu.Unlock()
	if err == nil && v.Weight != own.Weight {
		r.log.Info("etcdlb: key edited in place; keeping its weight as an override",
			"weight", v.Weight, "own_weight", own.Weight, "override_key", r.ovrKey)
		if err := r.putOverride(ctx, v.Weight); err != nil {
			r.log.Warn("etcdlb: cannot save the edited weight as an override yet; leaving the key as it is",
				"op", "put", "key", r.ovrKey, "err", err)
			return false, err
		}
	}
	return true, nil
}

func (r *Registrar) putOverride(ctx context.Context, weight uint32) error {
	b, err := keyspace.EncodeOverride(weight)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, r.opts.RequestTimeout)
	defer cancel()
	if _, err = r.cli.Put(ctx, r.ovrKey, string(b)); err != nil {
		return etcdutil.Explain(ctx, r.cli, "put", err, etcdutil.Write(r.ovrKey))
	}
	return nil
}

// get returns the key, or nil if it does not exist, and the revision read.
func (r *Registrar) get(ctx context.Context) (*mvccpb.KeyValue, int64, error) {
	ctx, cancel := context.WithTimeout(ctx, r.opts.RequestTimeout)
	defer cancel()
	resp, err := r.cli.Get(ctx, r.key)
	if err != nil {
		return nil, 0, etcdutil.Explain(ctx, r.cli, "get", err, etcdutil.Read(r.key))
	}
	if len(resp.Kvs) == 0 {
		return nil, resp.Header.Revision, nil
	}
	return resp.Kvs[0], resp.Header.Revision, nil
}

// errKeyDeleted is why a registration whose key vanished is written again:
// its lease was revoked, or someone deleted the key.
var errKeyDeleted = errors.New("key deleted from outside (lease revoked, or deleted by hand)")

func (r *Registrar) leaseFailed(lease clientv3.LeaseID, err error) {
	if r.ctx.Err() != nil {
		return
	}
	r.log.Warn("etcdlb: lease lost; re-registering", "lease", leaseHex(lease), "err", err)
	r.opts.observer.LeaseFailed(r.reg.Service, r.reg.Addr, err)
}

// revoke drops a lease that no longer holds the key, best effort.
func (r *Registrar) revoke(lease clientv3.LeaseID) {
	ctx, cancel := context.WithTimeout(r.ctx, r.opts.RequestTimeout)
	defer cancel()
	if _, err := r.cli.Revoke(ctx, lease); err != nil && r.ctx.Err() == nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		r.log.Warn("etcdlb: cannot revoke a lease that no longer holds the key", "op", "revoke", "lease", lease, "err", err)
	}
}

// leaseHex renders a lease ID as etcdctl prints it.
func leaseHex(id clientv3.LeaseID) string { return fmt.Sprintf("%x", int64(id)) }

// checkDialable refuses an address no client can dial: an unspecified IP
// (0.0.0.0, ::), on top of checkAddr's rules (port 0 among them).
func checkDialable(addr string) error {
	if err := keyspace.CheckAddr(addr); err != nil {
		return err
	}
	host, _, _ := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		return fmt.Errorf("address %q: %s is the unspecified address, which no client can dial; register the server's own IP or host name", addr, host)
	}
	return nil
}
