package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/etcdlb/etcdlb/registry"
)

// view shows the demo: a redrawn screen on a terminal, plain lines
// otherwise. It also hands each stats window to the scenario's checks.
type view struct {
	d     *demo
	start time.Time

	mu      sync.Mutex
	last    window
	next    chan struct{} // closed and replaced when a new window is taken
	weights map[string]string
	step    string
	look    string
	log     []string
	ticks   int
}

func newView(d *demo) *view {
	return &view{d: d, start: time.Now(), next: make(chan struct{}), weights: map[string]string{}}
}

// run refreshes the view until ctx is done.
func (v *view) run(ctx context.Context) {
	go v.pollWeights(ctx)
	tick := time.NewTicker(v.d.cfg.refresh)
	defer tick.Stop()
	prev := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			w := v.d.stats.take(now.Sub(prev))
			prev = now
			v.mu.Lock()
			v.last = w
			v.ticks++
			close(v.next)
			v.next = make(chan struct{})
			v.renderLocked()
			v.mu.Unlock()
		}
	}
}

// pollWeights reads the weights from etcd, so that changes made with
// "etcdlb weight" from another terminal show too.
func (v *view) pollWeights(ctx context.Context) {
	for {
		lctx, cancel := context.WithTimeout(ctx, time.Second)
		ins, err := registry.List(lctx, v.d.cli, demoService)
		cancel()
		if err == nil {
			m := map[string]string{}
			for _, in := range ins {
				switch {
				case in.Err != nil:
				case in.HasOverride:
					m[in.ID] = fmt.Sprintf("%d→%d", in.Own.Weight, in.Override)
				default:
					m[in.ID] = fmt.Sprint(in.Own.Weight)
				}
			}
			v.mu.Lock()
			v.weights = m
			v.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// nextWindow waits for the next stats window.
func (v *view) nextWindow(ctx context.Context) (window, bool) {
	v.mu.Lock()
	ch := v.next
	v.mu.Unlock()
	select {
	case <-ctx.Done():
		return window{}, false
	case <-ch:
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.last, true
}

func (v *view) header() {
	ep := strings.Join(v.d.etcd.Endpoints(), ",")
	v.say(fmt.Sprintf("etcd is at %s; from another terminal try: etcdlb ls %s --endpoints=%s", ep, demoService, ep))
	v.say("Prometheus metrics of the clients, resolvers and registrations: " + v.d.metricsURL)
}

// setStep shows a new step of the scenario.
func (v *view) setStep(title, look string) {
	v.mu.Lock()
	v.step, v.look = title, look
	v.mu.Unlock()
	v.say("== " + title)
	v.say("   look at: " + look)
}

// say adds a line to the narration.
func (v *view) say(line string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	line = fmt.Sprintf("%5.1fs %s", time.Since(v.start).Seconds(), esc(line))
	if !v.d.cfg.tty {
		fmt.Fprintln(v.d.env.stdout, line)
		return
	}
	v.log = append(v.log, line)
	if len(v.log) > 14 {
		v.log = v.log[len(v.log)-14:]
	}
	v.renderLocked()
}

// shortPolicy is a policy's name without the "etcdlb_" that every one has.
func shortPolicy(name string) string { return strings.TrimPrefix(name, "etcdlb_") }

func (v *view) renderLocked() {
	if v.last.calls == nil {
		return
	}
	f := v.frameLocked()
	if !v.d.cfg.tty {
		// Plain lines, about once a second.
		if every := max(1, int(time.Second/v.d.cfg.refresh)); v.ticks%every != 0 {
			return
		}
		renderLines(v.d.env.stdout, f)
		return
	}
	renderScreen(v.d.env.stdout, f)
}

// frame is what one redraw shows: a snapshot of the demo's state.
type frame struct {
	elapsed  time.Duration
	etcd     string // its endpoints
	backends []frameBackend
	win      window // calls per policy and backend, as demoPolicies and backends
	step     string
	look     string
	log      []string
}

type frameBackend struct {
	name, addr, zone string
	weight           string // as etcd has it: "10", or "10→100" with an override
	inflight         int64
}

func (v *view) frameLocked() frame {
	f := frame{elapsed: time.Since(v.start), etcd: strings.Join(v.d.etcd.Endpoints(), ","),
		win: v.last, step: v.step, look: v.look, log: v.log}
	for _, be := range v.d.backends {
		wt := v.weights[be.srv.Addr]
		if wt == "" {
			wt = "-"
		}
		f.backends = append(f.backends, frameBackend{name: be.name, addr: be.srv.Addr, zone: be.zone, weight: esc(wt), inflight: be.srv.Inflight()})
	}
	return f
}

// renderLines writes f as one plain line per policy: each backend's share
// of its calls, its calls per second and errors.
func renderLines(out io.Writer, f frame) {
	w := f.win
	for p, name := range demoPolicies {
		var b strings.Builder
		fmt.Fprintf(&b, "%5.1fs   %-14s", f.elapsed.Seconds(), shortPolicy(name))
		for i, be := range f.backends {
			fmt.Fprintf(&b, " %s %3.0f%%", be.name, 100*w.share(p, i))
		}
		fmt.Fprintf(&b, "  calls/s %4.0f  errors %d", w.rate(p), w.errs[p])
		fmt.Fprintln(out, b.String())
	}
}

// renderScreen clears a terminal and draws f: a table of the backends (zone,
// weight, share of each policy's calls, calls in flight, latency), each
// policy's calls per second and errors, the step and the narration.
func renderScreen(out io.Writer, f frame) {
	w := f.win
	var b strings.Builder
	b.WriteString("\x1b[H\x1b[2J")
	fmt.Fprintf(&b, "etcdlb demo — service %q, clients in zone a — %.0fs — etcd %s\n\n",
		demoService, f.elapsed.Seconds(), f.etcd)
	fmt.Fprintf(&b, "%-4s %-16s %-4s %-9s", "", "backend", "zone", "weight")
	for _, p := range demoPolicies {
		fmt.Fprintf(&b, " %14s", shortPolicy(p))
	}
	fmt.Fprintf(&b, " %9s %9s\n", "in-flight", "latency")
	for i, be := range f.backends {
		fmt.Fprintf(&b, "%-4s %-16s %-4s %-9s", be.name, be.addr, be.zone, be.weight)
		for p := range demoPolicies {
			fmt.Fprintf(&b, " %13.0f%%", 100*w.share(p, i))
		}
		fmt.Fprintf(&b, " %9d %9s\n", be.inflight, w.latency(i).Round(100*time.Microsecond))
	}
	fmt.Fprintf(&b, "\n%-36s", "calls/s")
	for p := range demoPolicies {
		fmt.Fprintf(&b, " %14.0f", w.rate(p))
	}
	fmt.Fprintf(&b, "\n%-36s", "errors")
	for p := range demoPolicies {
		fmt.Fprintf(&b, " %14d", w.errs[p])
	}
	fmt.Fprintf(&b, "\n\nstep: %s\nlook at: %s\n\n", f.step, f.look)
	for _, l := range f.log {
		b.WriteString(l + "\n")
	}
	fmt.Fprint(out, b.String())
}
