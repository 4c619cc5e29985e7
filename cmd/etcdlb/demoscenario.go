package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	lbpolicies "github.com/etcdlb/etcdlb/balancer"
	"github.com/etcdlb/etcdlb/registry"
)

// check says whether a window shows what a step claims, and what it saw.
type check func(w window) (ok bool, saw string)

// step is one narrated step of the scenario: what it does, what to look
// at, and what it claims and checks.
type step struct {
	title, look, claim string
	act                func(context.Context) error // nil: nothing to do
	check              check
}

// The backends of zone a and of zone b, by index in demo.backends.
var zoneA, zoneB = []int{0, 1, 2}, []int{3, 4, 5}

// scenario runs the narrated steps and returns how many checks failed.
func (d *demo) scenario(ctx context.Context) (failed int) {
	steps := append(d.weightSteps(), d.failureSteps()...)
	for i, st := range steps {
		d.view.setStep(fmt.Sprintf("step %d/%d: %s", i+1, len(steps), st.title), st.look)
		stepStart := time.Now()
		ok, checked := d.runStep(ctx, st)
		if !ok {
			failed++
		}
		if ctx.Err() != nil {
			return failed
		}
		if checked && !d.pause(ctx, stepStart) {
			return failed
		}
	}
	if ok, saw := d.checkMetrics(ctx); ok {
		d.view.say("PASS the metrics endpoint reports every policy's picks and the registrations (" + saw + ")")
	} else {
		d.view.say("FAIL the metrics endpoint: " + saw)
		failed++
	}
	return failed
}

// runStep acts and checks, and says PASS or FAIL. ok is false when the
// step failed (a step cut short by ctx has not); checked is false when its
// act failed and nothing was checked.
func (d *demo) runStep(ctx context.Context, st step) (ok, checked bool) {
	if st.act != nil {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := st.act(actx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return true, false
			}
			d.view.say(fmt.Sprintf("FAIL %s: %v", st.title, err))
			return false, false
		}
	}
	ok, saw := d.waitFor(ctx, st.check, 10*time.Second)
	switch {
	case ctx.Err() != nil:
		return true, true
	case ok:
		d.view.say(fmt.Sprintf("PASS %s (%s)", st.claim, saw))
		return true, true
	}
	d.view.say(fmt.Sprintf("FAIL %s (last window: %s)", st.claim, saw))
	return false, true
}

// pause lets a step show for its duration from start; false when ctx ends
// first.
func (d *demo) pause(ctx context.Context, start time.Time) bool {
	rest := d.cfg.step - time.Since(start)
	if rest <= 0 {
		return true
	}
	select {
	case <-ctx.Done():
		return false
	case <-time.After(rest):
		return true
	}
}

// weightSteps show the weights and the zone at work: the steady state, an
// operator's weight override, a drain.
func (d *demo) weightSteps() []step {
	a1, a2 := d.backends[0], d.backends[1]
	weighted := exactlyWeighted()
	return []step{{
		title: "steady state",
		look:  "zone b gets nothing (the clients are in zone a); weighted splits zone a 10:20:30, round_robin evenly",
		claim: "zone b serves no calls; no errors",
		check: d.all(func(w window, p int) (bool, string) {
			return d.zoneShare(w, p, zoneB) == 0, fmt.Sprintf("zone b %.0f%%", 100*d.zoneShare(w, p, zoneB))
		}),
	}, {
		title: fmt.Sprintf("raise a1's weight from 10 to 100 with an operator override in etcd (etcdlb weight %s %s 100)", demoService, a1.srv.Addr),
		look:  "the weighted column: a1 takes most of zone a's traffic (100 of 150)",
		claim: "weighted sends a1 more than half its calls",
		act: func(ctx context.Context) error {
			return registry.SetOverride(ctx, d.cli, demoService, a1.srv.Addr, 100)
		},
		check: func(w window) (bool, string) {
			s := w.share(weighted, 0)
			return s > 0.5 && w.errs[weighted] == 0, fmt.Sprintf("a1 %.0f%%", 100*s)
		},
	}, {
		title: fmt.Sprintf("drain a2 (etcdlb drain %s %s: override weight 0)", demoService, a2.srv.Addr),
		look:  "a2's share drops to 0 for every policy; its connection stays up",
		claim: "a2 serves no calls",
		act: func(ctx context.Context) error {
			return registry.SetOverride(ctx, d.cli, demoService, a2.srv.Addr, 0)
		},
		check: d.all(func(w window, p int) (bool, string) {
			return w.calls[p][1] == 0, fmt.Sprintf("a2 %d calls", w.calls[p][1])
		}),
	}}
}

// failureSteps show failures and recovery: a backend killed, a zone lost,
// the zone back.
func (d *demo) failureSteps() []step {
	a1, a2, a3 := d.backends[0], d.backends[1], d.backends[2]
	return []step{{
		title: "kill a3 (its server stops at once; its registration stays in etcd until the lease expires)",
		look:  "a few calls in flight fail, then a3 gets nothing and the errors stop: clients skip a dead connection",
		claim: "a3 serves no calls and no call fails",
		act: func(context.Context) error {
			a3.srv.Stop()
			return nil
		},
		check: d.all(func(w window, p int) (bool, string) {
			return w.calls[p][2] == 0, fmt.Sprintf("a3 %d calls", w.calls[p][2])
		}),
	}, {
		title: "lose zone a: kill a1 too (a2 is drained, a3 is dead)",
		look:  "every policy spills to zone b; errors stay at 0 once the connection to a1 is seen closed",
		claim: "zone b serves every call and no call fails",
		act: func(context.Context) error {
			a1.srv.Stop()
			return nil
		},
		check: d.all(func(w window, p int) (bool, string) {
			s := d.zoneShare(w, p, zoneB)
			return s == 1, fmt.Sprintf("zone b %.0f%%", 100*s)
		}),
	}, {
		title: "recover zone a: restart a1 and a3, clear the overrides (etcdlb undrain)",
		look:  "traffic comes home to zone a; zone b goes back to 0",
		claim: "zone a serves every call and no call fails",
		act: func(ctx context.Context) error {
			for _, b := range []*demoBackend{a1, a3} {
				if err := b.srv.Restart(); err != nil {
					return err
				}
			}
			for _, b := range []*demoBackend{a1, a2} {
				if err := registry.ClearOverride(ctx, d.cli, demoService, b.srv.Addr); err != nil {
					return err
				}
			}
			return nil
		},
		check: d.all(func(w window, p int) (bool, string) {
			s := d.zoneShare(w, p, zoneA)
			return s == 1, fmt.Sprintf("zone a %.0f%%", 100*s)
		}),
	}}
}

// checkMetrics reads the demo's own /metrics as Prometheus would.
func (d *demo) checkMetrics(ctx context.Context) (bool, string) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.metricsURL, nil)
	if err != nil {
		return false, err.Error()
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false, err.Error()
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return false, err.Error()
	}
	text := string(body)
	for _, p := range demoPolicies {
		if !strings.Contains(text, `etcdlb_balancer_picks_total{endpoint="`) || !strings.Contains(text, `policy="`+p+`"`) {
			return false, "no picks_total series for " + p
		}
	}
	if !strings.Contains(text, `etcdlb_registration_state{addr=`) {
		return false, "no etcdlb_registration_state series"
	}
	return true, fmt.Sprintf("%d bytes from %s", len(body), d.metricsURL)
}

// waitFor waits, at most timeout, for two windows in a row that pass c and
// have enough calls from every policy to judge.
func (d *demo) waitFor(ctx context.Context, c check, timeout time.Duration) (bool, string) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	good, saw := 0, "no window yet"
	for {
		w, ok := d.view.nextWindow(ctx)
		if !ok {
			return false, saw
		}
		var pass bool
		pass, saw = c(w)
		for p := range demoPolicies {
			if w.total(p) < 5 {
				pass = false
			}
		}
		if !pass {
			good = 0
			continue
		}
		if good++; good == 2 {
			return true, saw
		}
	}
}

// all is a check that holds when f holds for every policy and no call
// failed; it reports what it saw per policy.
func (d *demo) all(f func(w window, p int) (bool, string)) check {
	return func(w window) (bool, string) {
		ok, saw := true, ""
		for p, name := range demoPolicies {
			pok, s := f(w, p)
			ok = ok && pok && w.errs[p] == 0
			if saw != "" {
				saw += "; "
			}
			saw += fmt.Sprintf("%s: %s, %d errors", shortPolicy(name), s, w.errs[p])
		}
		return ok, saw
	}
}

// zoneShare is the share of policy p's calls served by the backends bs.
func (d *demo) zoneShare(w window, p int, bs []int) float64 {
	var s float64
	for _, b := range bs {
		s += w.share(p, b)
	}
	return s
}

// exactlyWeighted is the index in demoPolicies of the first policy whose
// picks follow the weights exactly (etcdlb_weighted), whose column the
// weight step checks.
func exactlyWeighted() int {
	return slices.IndexFunc(lbpolicies.Policies(), func(p lbpolicies.Policy) bool { return p.Weights == lbpolicies.WeightsExact })
}
