package balancer

import "time"

// clock is the time the wait for the local zone reads: the real one, or a
// test's.
type clock interface {
	Now() time.Time
	// AfterFunc calls f after d, unless stop is called first.
	AfterFunc(d time.Duration, f func()) (stop func() bool)
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) AfterFunc(d time.Duration, f func()) func() bool { return time.AfterFunc(d, f).Stop }

// waitForLocalLocked returns how many undrained local endpoints are on their
// first connection and still worth waiting for (see Config.LocalZoneWait),
// and sets a timer to rebuild the picker when the first of those waits
// ends. A client already spilling to other zones waits for nobody: its
// calls go on flowing there until the local zone is ready.
func (b *lb) waitForLocalLocked() int {
	b.stopWaitLocked()
	if b.cfg.LocalZone == "" || b.cfg.LocalZoneWait <= 0 || b.spilled {
		return 0
	}
	now := b.clock.Now()
	var n int
	var next time.Time
	for _, c := range b.order {
		if c.settled || c.attrs.Zone != b.cfg.LocalZone || c.attrs.Weight == 0 {
			continue
		}
		end := c.appeared.Add(time.Duration(b.cfg.LocalZoneWait))
		if !now.Before(end) {
			continue
		}
		n++
		if next.IsZero() || end.Before(next) {
			next = end
		}
	}
	if n > 0 {
		b.stopWait = b.clock.AfterFunc(next.Sub(now), func() {
			b.mu.Lock()
			defer b.mu.Unlock()
			b.requestRebuildLocked()
		})
	}
	return n
}

func (b *lb) stopWaitLocked() {
	if b.stopWait != nil {
		b.stopWait()
		b.stopWait = nil
	}
}
