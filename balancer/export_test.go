package balancer

import (
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/balancer"
)

// BuildWithClock builds the policy named name on cc with clk for its time.
func BuildWithClock(name string, cc balancer.ClientConn, clk *FakeClock) balancer.Balancer {
	for _, p := range policies {
		if p.name == name {
			return newBalancer(cc, balancer.BuildOptions{}, p, clk)
		}
	}
	return nil
}

// FakeClock is a clock that moves only when Advance is called.
type FakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	at      time.Time
	f       func()
	stopped bool
}

func NewFakeClock() *FakeClock { return &FakeClock{now: time.Unix(1e9, 0)} }

func (c *FakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *FakeClock) AfterFunc(d time.Duration, f func()) func() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{at: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		was := !t.stopped
		t.stopped = true
		return was
	}
}

// Timers is how many timers are set and not yet fired or stopped.
func (c *FakeClock) Timers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, t := range c.timers {
		if !t.stopped {
			n++
		}
	}
	return n
}

// Advance moves the clock on by d and runs the timers that are then due,
// on the caller's goroutine.
func (c *FakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []func()
	for _, t := range c.timers {
		if !t.stopped && !t.at.After(c.now) {
			t.stopped = true
			due = append(due, t.f)
		}
	}
	c.mu.Unlock()
	for _, f := range due {
		f()
	}
}

// ChildStates describes the states of bal's endpoints as it last saw them,
// "a:1=READY b:1=CONNECTING", once no picker rebuild is pending, so that the
// picker it last pushed reflects them; "" while one is.
func ChildStates(bal balancer.Balancer) string {
	b := bal.(*lb)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dirty || b.rebuilding {
		return ""
	}
	var s []string
	for _, c := range b.order {
		s = append(s, c.addr+"="+c.state.ConnectivityState.String())
	}
	return strings.Join(s, " ")
}

// ParamFields returns, for each policy, the JSON names of the config fields
// it alone takes.
func ParamFields() map[string][]string {
	m := map[string][]string{}
	for _, p := range policies {
		m[p.name] = p.paramFields()
	}
	return m
}

// ConfigFields returns the JSON names of Config's own fields.
func ConfigFields() []string { return configFields }

// WithParams returns c with the policy's params p.
func WithParams(c Config, p Params) Config {
	c.params = p
	return c
}
