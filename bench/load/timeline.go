package load

import (
	"sync/atomic"
	"time"
)

// Timeline counts events per row (a backend, or errors) in fixed windows of
// time from its start. Add is safe from many goroutines; events outside its
// span are not counted.
type Timeline struct {
	Start  time.Time
	Window time.Duration
	rows   [][]atomic.Int64
}

// NewTimeline covers span from start in windows of window, for rows rows.
func NewTimeline(start time.Time, window, span time.Duration, rows int) *Timeline {
	n := int(span/window) + 1
	tl := &Timeline{Start: start, Window: window, rows: make([][]atomic.Int64, rows)}
	for i := range tl.rows {
		tl.rows[i] = make([]atomic.Int64, n)
	}
	return tl
}

// Add counts one event of row at t.
func (tl *Timeline) Add(row int, t time.Time) {
	w := int(t.Sub(tl.Start) / tl.Window)
	if w >= 0 && w < len(tl.rows[row]) {
		tl.rows[row][w].Add(1)
	}
}

// Rows is the number of rows.
func (tl *Timeline) Rows() int { return len(tl.rows) }

// Windows is the number of windows.
func (tl *Timeline) Windows() int { return len(tl.rows[0]) }

// At returns row's count in window w.
func (tl *Timeline) At(row, w int) int64 { return tl.rows[row][w].Load() }

// Sum returns row's count over windows [from, to).
func (tl *Timeline) Sum(row, from, to int) int64 {
	from, to = max(from, 0), min(to, tl.Windows())
	var n int64
	for w := from; w < to; w++ {
		n += tl.rows[row][w].Load()
	}
	return n
}

// WindowOf returns the window holding the time d after Start.
func (tl *Timeline) WindowOf(d time.Duration) int { return int(d / tl.Window) }
