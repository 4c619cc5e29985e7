package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcdlb/etcdlb/endpoint"
	"github.com/etcdlb/etcdlb/keyspace"
	"github.com/etcdlb/etcdlb/registry"
	"github.com/etcdlb/etcdlb/resolver"
)

var lsCmd = &command{
	name:    "ls",
	minArgs: 0, maxArgs: 1, conn: true,
	usage: `Usage: etcdlb ls [SERVICE] [connection flags]

Lists a service's endpoints, or every service's when SERVICE is omitted:
the weight clients use, the endpoint's own weight and the operator override,
zone, metadata, the time left on its lease, and whether clients use the key
or reject it (and why). Exit code 1 when SERVICE has no keys.
` + connHelp,
	run: runLs,
}

var weightCmd = &command{
	name:    "weight",
	minArgs: 3, maxArgs: 3, conn: true,
	flags: forceFlag("set the override even if the endpoint is not registered (yet)"),
	check: checkWeight,
	usage: `Usage: etcdlb weight SERVICE ADDR N [--force] [connection flags]

Sets the operator's weight override of endpoint ADDR of SERVICE to N, an
integer in 0..1000000. It is written to <prefix>_etcdlb/override/SERVICE/ADDR,
apart from the endpoint's own key, which keeps its lease. It wins over the
weight the server registered until "etcdlb override clear", and survives the
server's restarts. Refuses an endpoint that is not registered, unless --force.
` + connHelp,
	run: runWeight,
}

var drainCmd = &command{
	name:    "drain",
	minArgs: 2, maxArgs: 2, conn: true,
	flags: forceFlag("drain even if the endpoint is not registered (yet)"),
	usage: `Usage: etcdlb drain SERVICE ADDR [--force] [connection flags]

Drains endpoint ADDR of SERVICE: sets its operator override to weight 0, the
same as "etcdlb weight SERVICE ADDR 0". Clients stop sending it new calls
(unless every endpoint they can use is drained) but keep its connection.
Undo with "etcdlb undrain".
` + connHelp,
	run: runDrain,
}

var undrainCmd = &command{
	name:    "undrain",
	minArgs: 2, maxArgs: 2, conn: true,
	usage: `Usage: etcdlb undrain SERVICE ADDR [connection flags]

Undoes "etcdlb drain": deletes the operator override of ADDR when its weight
is 0, so the endpoint's own weight applies again. It does nothing when there
is no override, and refuses when the override is not 0 (use "etcdlb override
clear" for that). It cannot undo a drain the server made itself (own weight 0).
` + connHelp,
	run: runUndrain,
}

var overrideCmd = &command{
	name:    "override",
	minArgs: 3, maxArgs: 3, conn: true,
	check: checkClear,
	usage: `Usage: etcdlb override clear SERVICE ADDR [connection flags]

Deletes the operator's weight override of endpoint ADDR of SERVICE, whatever
its weight; the weight the server registered applies again. Also removes an
override left behind by an endpoint that is gone.
` + connHelp,
	run: runOverride,
}

var watchCmd = &command{
	name:    "watch",
	minArgs: 1, maxArgs: 1, conn: true,
	usage: `Usage: etcdlb watch SERVICE [connection flags]

Prints SERVICE's endpoints, then every change as the resolver sees it: an
endpoint added or changed (with its weight, zone and metadata), removed, an
override set or cleared, and keys the resolver rejects with the reason. Runs
until Ctrl-C; exit code 1 if the watch fails (e.g. its revision was compacted).
` + connHelp,
	run: runWatch,
}

// opCtx bounds one operator command's work on etcd after connecting.
const opTimeout = 10 * time.Second

// forceFlag registers --force, described by usage.
func forceFlag(usage string) func(fs *flag.FlagSet, a *invocation) {
	return func(fs *flag.FlagSet, a *invocation) { fs.BoolVar(&a.force, "force", false, usage) }
}

// fail prints err for command c, escaped (it may quote etcd's keys), and
// returns exitError.
func fail(e *env, c *command, err error) int {
	fmt.Fprintf(e.stderr, "etcdlb %s: %s\n", c.name, esc(err.Error()))
	return exitError
}

func runLs(c *command, e *env, a *invocation) int {
	cf, pos := &a.conn, a.pos
	ctx, cancel := context.WithTimeout(context.Background(), cf.dialTimeout+opTimeout)
	defer cancel()
	cli, err := cf.connect(ctx)
	if err != nil {
		return fail(e, c, err)
	}
	defer cli.Close()
	var services []string
	if len(pos) == 1 {
		services = pos
	} else if services, err = registry.Services(ctx, cli, cf.opts()...); err != nil {
		return fail(e, c, fmt.Errorf("%w; \"etcdlb ls SERVICE\" lists one service without it", err))
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tADDR\tWEIGHT\tOWN\tOVERRIDE\tZONE\tMETADATA\tTTL\tSTATUS")
	for _, svc := range services {
		ins, err := registry.List(ctx, cli, svc, cf.opts()...)
		var pe *registry.PermissionError
		if err != nil && len(pos) == 0 && errors.As(err, &pe) {
			// Another team's service, in a listing of all: say so, go on.
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t-\t-\t-\tdenied: no %s permission on %q\n", esc(svc), pe.Perm, esc(pe.Key))
			continue
		}
		if err != nil {
			return fail(e, c, err)
		}
		if len(ins) == 0 && len(pos) == 1 {
			return fail(e, c, fmt.Errorf("unknown service %q: no keys under %q", svc, keyspace.ServicePrefix(cf.prefix, svc)))
		}
		for _, in := range ins {
			own, ovr, ttl, st := "-", "-", "-", "ok"
			if in.Err == nil {
				own = fmt.Sprint(in.Own.Weight)
			} else {
				st = "rejected: " + reason(in.Err)
			}
			if in.HasOverride {
				ovr = fmt.Sprint(in.Override)
			}
			if in.TTL >= 0 {
				ttl = in.TTL.String()
			}
			w := "-"
			if in.Err == nil {
				w = fmt.Sprint(in.Weight())
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", esc(svc), esc(in.ID), w, own, ovr,
				esc(dash(in.Own.Zone)), esc(dash(metadata(in.Own.Metadata))), ttl, esc(st))
		}
	}
	tw.Flush()
	return exitOK
}

func reason(err error) string {
	var ve *keyspace.ValueError
	if errors.As(err, &ve) {
		return fmt.Sprintf("%s: %s", ve.Reason, ve.Detail)
	}
	return err.Error()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func metadata(m map[string]string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, k+"="+m[k])
	}
	return strings.Join(parts, ",")
}

// parseWeight parses an operator's weight: a non-negative integer no larger
// than endpoint.MaxWeight.
func parseWeight(s string) (uint32, error) {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n > endpoint.MaxWeight {
		return 0, fmt.Errorf("weight %q is not an integer in 0..%d", s, endpoint.MaxWeight)
	}
	return uint32(n), nil
}

// findEndpoint returns the registered endpoint addr of service, with a
// clear error when the service or the address is unknown.
func findEndpoint(ctx context.Context, cli *clientv3.Client, cf *connFlags, service, addr string) (registry.Instance, error) {
	ins, err := registry.List(ctx, cli, service, cf.opts()...)
	if err != nil {
		return registry.Instance{}, err
	}
	key := keyspace.EndpointKey(cf.prefix, service, addr)
	var ids []string
	for _, in := range ins {
		if in.Key == key {
			return in, nil
		}
		if in.Key == keyspace.EndpointKey(cf.prefix, service, in.ID) {
			ids = append(ids, in.ID)
		}
	}
	if len(ids) == 0 {
		return registry.Instance{}, fmt.Errorf("unknown service %q: no endpoints under %q", service, keyspace.ServicePrefix(cf.prefix, service))
	}
	return registry.Instance{}, fmt.Errorf("unknown address %q: service %q has %s", addr, service, strings.Join(ids, ", "))
}

// checkWeight parses weight's N.
func checkWeight(a *invocation) (err error) {
	a.weight, err = parseWeight(a.pos[2])
	return err
}

func runWeight(c *command, e *env, a *invocation) int {
	return setOverride(c, e, &a.conn, a.pos[0], a.pos[1], a.weight, a.force)
}

func runDrain(c *command, e *env, a *invocation) int {
	return setOverride(c, e, &a.conn, a.pos[0], a.pos[1], 0, a.force)
}

func setOverride(c *command, e *env, cf *connFlags, service, addr string, w uint32, force bool) int {
	ctx, cancel := context.WithTimeout(context.Background(), cf.dialTimeout+opTimeout)
	defer cancel()
	cli, err := cf.connect(ctx)
	if err != nil {
		return fail(e, c, err)
	}
	defer cli.Close()
	in, err := findEndpoint(ctx, cli, cf, service, addr)
	if err != nil && !force {
		return fail(e, c, err)
	}
	if err := registry.SetOverride(ctx, cli, service, addr, w, cf.opts()...); err != nil {
		return fail(e, c, err)
	}
	own := "not registered"
	if in.Key != "" && in.Err == nil {
		own = fmt.Sprintf("own weight %d", in.Own.Weight)
	}
	what := fmt.Sprintf("weight override %d", w)
	if w == 0 {
		what = "drained (weight override 0)"
	}
	fmt.Fprintf(e.stdout, "%s %s: %s; %s\n", esc(service), esc(addr), what, own)
	return exitOK
}

func runUndrain(c *command, e *env, a *invocation) int {
	return clearOverride(c, e, &a.conn, a.pos[0], a.pos[1], true)
}

// checkClear accepts override's only subcommand.
func checkClear(a *invocation) error {
	if a.pos[0] != "clear" {
		return fmt.Errorf("unknown subcommand %q (only \"clear\")", a.pos[0])
	}
	return nil
}

func runOverride(c *command, e *env, a *invocation) int {
	return clearOverride(c, e, &a.conn, a.pos[1], a.pos[2], false)
}

// clearOverride deletes the override of addr; onlyDrain refuses one whose
// weight is not 0.
func clearOverride(c *command, e *env, cf *connFlags, service, addr string, onlyDrain bool) int {
	ctx, cancel := context.WithTimeout(context.Background(), cf.dialTimeout+opTimeout)
	defer cancel()
	cli, err := cf.connect(ctx)
	if err != nil {
		return fail(e, c, err)
	}
	defer cli.Close()
	w, has, err := registry.GetOverride(ctx, cli, service, addr, cf.opts()...)
	var ve *keyspace.ValueError
	if err != nil && !errors.As(err, &ve) {
		return fail(e, c, err)
	}
	has = has || ve != nil // an unreadable override can be cleared too
	in, ferr := findEndpoint(ctx, cli, cf, service, addr)
	if !has {
		if ferr != nil {
			return fail(e, c, ferr)
		}
		msg := "no override; nothing to do"
		if in.Err == nil && in.Own.Weight == 0 {
			msg += " (the server drained itself: own weight 0)"
		}
		fmt.Fprintf(e.stdout, "%s %s: %s\n", esc(service), esc(addr), msg)
		return exitOK
	}
	if onlyDrain && ve == nil && w != 0 {
		return fail(e, c, fmt.Errorf("%s %s is not drained: its override is weight %d; use \"etcdlb override clear\"", service, addr, w))
	}
	if err := registry.ClearOverride(ctx, cli, service, addr, cf.opts()...); err != nil {
		return fail(e, c, err)
	}
	own := "not registered"
	if ferr == nil && in.Err == nil {
		own = fmt.Sprintf("own weight %d applies", in.Own.Weight)
	}
	fmt.Fprintf(e.stdout, "%s %s: override cleared; %s\n", esc(service), esc(addr), own)
	return exitOK
}

func runWatch(c *command, e *env, a *invocation) int {
	cf, service := &a.conn, a.pos[0]
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cctx, cancel := context.WithTimeout(ctx, cf.dialTimeout)
	cli, err := cf.connect(cctx)
	cancel()
	if err != nil {
		return fail(e, c, err)
	}
	defer cli.Close()
	// The resolver's own read path: it checks the name, and a permission
	// error names the prefix the user cannot read.
	w, err := resolver.NewWatcher(cli, service, resolver.WithPrefix(cf.prefix))
	if err != nil {
		return fail(e, c, err)
	}
	lctx, cancel := context.WithTimeout(ctx, opTimeout)
	h, changes, err := w.List(lctx)
	cancel()
	if err != nil {
		return fail(e, c, err)
	}
	fmt.Fprintf(e.stdout, "watching %s (and %s) from revision %d; Ctrl-C to stop\n",
		esc(w.ServicePrefix()), esc(w.OverridePrefix()), h.Revision+1)
	for _, ch := range changes {
		printChange(e, ch)
	}
	fmt.Fprintln(e.stdout, "synced")
	s := w.Watch(ctx, h.Revision+1)
	defer s.Close()
	for b := range s.Batches() {
		switch {
		case ctx.Err() != nil:
			return exitOK
		case errors.Is(b.Err, resolver.ErrWatchClosed):
		case b.Err != nil:
			return fail(e, c, fmt.Errorf("watch failed: %w", b.Err))
		}
		for _, ch := range b.Changes {
			printChange(e, ch)
		}
	}
	if ctx.Err() != nil {
		return exitOK
	}
	return fail(e, c, resolver.ErrWatchClosed)
}

// printChange prints one change the way the resolver reads it.
func printChange(e *env, ch resolver.Change) {
	id := esc(ch.ID)
	switch {
	case ch.Override && ch.Deleted:
		fmt.Fprintf(e.stdout, "override cleared  %s\n", id)
	case ch.Override && ch.Err != nil:
		fmt.Fprintf(e.stdout, "override rejected %s  %s\n", id, esc(reason(ch.Err)))
	case ch.Override:
		fmt.Fprintf(e.stdout, "override          %s  weight=%d\n", id, ch.Weight)
	case ch.Deleted:
		fmt.Fprintf(e.stdout, "removed           %s\n", id)
	case ch.Err != nil:
		fmt.Fprintf(e.stdout, "rejected          %s  %s\n", id, esc(reason(ch.Err)))
	default:
		v := ch.Value
		fmt.Fprintf(e.stdout, "endpoint          %s  addr=%s weight=%d zone=%s metadata=%s\n",
			id, esc(v.Addr), v.Weight, esc(dash(v.Zone)), esc(dash(metadata(v.Metadata))))
	}
}
