package main

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// testFrame: two backends, a1 with an override and calls in flight, and
// half a second of calls: round robin 30:10, weighted 10:30, least-inflight
// 20:0, with 0, 2 and 5 errors.
func testFrame() frame {
	ms := int64(time.Millisecond)
	return frame{
		elapsed: 12 * time.Second,
		etcd:    "http://127.0.0.1:2379",
		backends: []frameBackend{
			{name: "a1", addr: "127.0.0.1:1001", zone: "a", weight: "10→100", inflight: 3},
			{name: "b1", addr: "127.0.0.1:1002", zone: "b", weight: "20"},
		},
		win: window{dur: 500 * time.Millisecond, counts: counts{
			calls:  [][]int64{{30, 10}, {10, 30}, {20, 0}},
			errs:   []int64{0, 2, 5},
			latN:   []int64{60, 40},
			latSum: []int64{60 * 3 * ms / 2, 40 * 2 * ms},
		}},
		step: "2. a1's weight raised",
		look: "weighted sends a1 most calls",
		log:  []string{"  1.0s == 1. steady state", "  5.0s PASS zone b gets nothing"},
	}
}

// line returns the fields of the first line of out whose fields start with
// prefix.
func line(t *testing.T, out string, prefix ...string) []string {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) >= len(prefix) && slices.Equal(f[:len(prefix)], prefix) {
			return f
		}
	}
	t.Fatalf("no line starting with %q in:\n%s", prefix, out)
	return nil
}

func TestRenderScreen(t *testing.T) {
	var b strings.Builder
	renderScreen(&b, testFrame())
	out := b.String()
	if !strings.HasPrefix(out, "\x1b[H\x1b[2J") {
		t.Errorf("the frame does not start by clearing the screen: %q", out[:min(len(out), 20)])
	}
	for _, tc := range []struct{ prefix, want []string }{
		// backend, address, zone, weight, share of round_robin, weighted,
		// least_inflight, in flight, latency
		{[]string{"backend"}, []string{"backend", "zone", "weight", "round_robin", "weighted", "least_inflight", "in-flight", "latency"}},
		{[]string{"a1"}, []string{"a1", "127.0.0.1:1001", "a", "10→100", "75%", "25%", "100%", "3", "1.5ms"}},
		{[]string{"b1"}, []string{"b1", "127.0.0.1:1002", "b", "20", "25%", "75%", "0%", "0", "2ms"}},
		{[]string{"calls/s"}, []string{"calls/s", "80", "80", "40"}},
		{[]string{"errors"}, []string{"errors", "0", "2", "5"}},
		{[]string{"step:"}, []string{"step:", "2.", "a1's", "weight", "raised"}},
	} {
		if got := line(t, out, tc.prefix...); !slices.Equal(got, tc.want) {
			t.Errorf("line %q, want %q\n%s", got, tc.want, out)
		}
	}
	for _, want := range []string{"etcd http://127.0.0.1:2379", "look at: weighted sends a1 most calls", "PASS zone b gets nothing"} {
		if !strings.Contains(out, want) {
			t.Errorf("the frame lacks %q:\n%s", want, out)
		}
	}
}

func TestRenderLinesArePlain(t *testing.T) {
	var b strings.Builder
	renderLines(&b, testFrame())
	out := b.String()
	if strings.ContainsAny(out, "\x1b\r") {
		t.Errorf("plain output has terminal control characters: %q", out)
	}
	if n := strings.Count(out, "\n"); n != len(demoPolicies) {
		t.Errorf("%d lines, want one per policy:\n%s", n, out)
	}
	for _, want := range [][]string{
		{"12.0s", "round_robin", "a1", "75%", "b1", "25%", "calls/s", "80", "errors", "0"},
		{"12.0s", "weighted", "a1", "25%", "b1", "75%", "calls/s", "80", "errors", "2"},
		{"12.0s", "least_inflight", "a1", "100%", "b1", "0%", "calls/s", "40", "errors", "5"},
	} {
		if got := line(t, out, want[:2]...); !slices.Equal(got, want) {
			t.Errorf("line %q, want %q", got, want)
		}
	}
}

// TestRenderEmptyWindow: a window without calls (all backends down, or the
// first tick) shows zeros, not NaN.
func TestRenderEmptyWindow(t *testing.T) {
	f := testFrame()
	f.win = window{counts: counts{calls: [][]int64{{0, 0}, {0, 0}, {0, 0}}, errs: []int64{0, 0, 0},
		latN: []int64{0, 0}, latSum: []int64{0, 0}}}
	var b strings.Builder
	renderScreen(&b, f)
	renderLines(&b, f)
	if out := b.String(); strings.Contains(out, "NaN") || strings.Contains(out, "Inf") {
		t.Errorf("an empty window renders NaN or Inf:\n%s", out)
	}
}
