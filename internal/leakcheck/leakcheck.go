// Package leakcheck finds goroutines that a test leaves running: it notes
// the goroutines alive before the code under test starts, and after it is
// closed waits, for a bounded time, until no other goroutine is left, then
// fails the test with the stacks of those that are.
//
//	defer leakcheck.Take().Check(t) // or: leakcheck.Verify(t)
//
// Goroutine ids are never reused, so a goroutine that was alive at Take is
// recognised by its id however its stack changed since.
package leakcheck

import (
	"bytes"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Timeout bounds how long Check waits for the goroutines to end.
const Timeout = 10 * time.Second

// ignored are goroutines that are not the code under test's: the testing
// framework's, and process-wide ones started once and never stopped.
var ignored = []string{
	"testing.tRunner(",              // parallel and sub-tests
	"testing.(*T).Run(",             // ditto
	"testing.runFuzzing(",           // the fuzzing coordinator
	"testing.(*F).Fuzz",             // ditto
	"os/signal.signal_recv",         // signal.Notify's loop, started once
	"os/signal.loop",                // ditto
	"runtime.ensureSigM",            // ditto
	"go.opencensus.io/stats/view.(", // a global worker started by init
	"created by runtime.gc",         // the runtime's own
}

// Snapshot is the set of goroutines alive when it was taken.
type Snapshot struct {
	ids map[uint64]bool
}

// Take notes the goroutines alive now.
func Take() Snapshot {
	s := Snapshot{ids: map[uint64]bool{}}
	for _, g := range goroutines() {
		s.ids[g.id] = true
	}
	return s
}

// Verify takes a snapshot now and checks it when t's cleanups run. Call it
// before anything that registers a cleanup closing what it starts: cleanups
// run last-registered first, so the check then runs after them.
func Verify(t testing.TB) {
	t.Helper()
	s := Take()
	t.Cleanup(func() { s.Check(t) })
}

// Check waits up to Timeout until every goroutine alive, but the caller's
// own, was in the snapshot, and otherwise fails t listing the others' stacks.
func (s Snapshot) Check(t testing.TB) {
	t.Helper()
	if leaked := s.wait(Timeout); len(leaked) > 0 {
		t.Errorf("leakcheck: %d goroutine(s) still running %v after the test closed everything:\n\n%s",
			len(leaked), Timeout, strings.Join(leaked, "\n\n"))
	}
}

// wait returns the stacks of the goroutines that are not in the snapshot
// and still run after d.
func (s Snapshot) wait(d time.Duration) []string {
	deadline := time.Now().Add(d)
	for delay := time.Millisecond; ; delay = min(2*delay, 100*time.Millisecond) {
		leaked := s.leaked()
		if len(leaked) == 0 || time.Now().After(deadline) {
			return leaked
		}
		time.Sleep(delay) // polling: a goroutine's end sends no event
	}
}

// leaked returns the stacks of the goroutines alive now and not in the
// snapshot, leaving out the caller's own and the ignored ones.
func (s Snapshot) leaked() []string {
	all := goroutines()
	self := all[0].id // runtime.Stack lists the caller first
	var out []string
	for _, g := range all {
		if g.id == self || s.ids[g.id] || isIgnored(g.stack) {
			continue
		}
		out = append(out, g.stack)
	}
	return out
}

func isIgnored(stack string) bool {
	for _, ig := range ignored {
		if strings.Contains(stack, ig) {
			return true
		}
	}
	return false
}

type goroutine struct {
	id    uint64
	stack string
}

// goroutines returns every goroutine's id and stack, the caller's first.
func goroutines() []goroutine {
	buf := make([]byte, 64<<10)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var gs []goroutine
	for _, block := range bytes.Split(buf, []byte("\n\n")) {
		// "goroutine 18 [chan receive]:"
		rest, ok := bytes.CutPrefix(block, []byte("goroutine "))
		if !ok {
			continue
		}
		idText, _, _ := bytes.Cut(rest, []byte(" "))
		id, err := strconv.ParseUint(string(idText), 10, 64)
		if err != nil {
			continue
		}
		gs = append(gs, goroutine{id: id, stack: string(block)})
	}
	return gs
}
