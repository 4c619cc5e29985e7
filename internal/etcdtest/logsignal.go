package etcdtest

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// LogSignal is a logger that logs through t and closes seen when a message
// containing msg is logged.
type LogSignal struct {
	Logger *slog.Logger
	seen   chan struct{}
}

// NewLogSignal returns a LogSignal for msg.
func NewLogSignal(t testing.TB, msg string) *LogSignal {
	s := &LogSignal{seen: make(chan struct{})}
	var once sync.Once
	s.Logger = slog.New(signalHandler{Logger(t).Handler(), func(m string) {
		if strings.Contains(m, msg) {
			once.Do(func() { close(s.seen) })
		}
	}})
	return s
}

// Wait waits until the message is logged.
func (s *LogSignal) Wait(t testing.TB) {
	t.Helper()
	select {
	case <-s.seen:
	case <-time.After(WaitTimeout):
		t.Fatal("timed out waiting for the log message")
	}
}

type signalHandler struct {
	slog.Handler
	on func(msg string)
}

func (h signalHandler) Handle(ctx context.Context, r slog.Record) error {
	h.on(r.Message)
	return h.Handler.Handle(ctx, r)
}

func (h signalHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return signalHandler{h.Handler.WithAttrs(as), h.on}
}

func (h signalHandler) WithGroup(g string) slog.Handler {
	return signalHandler{h.Handler.WithGroup(g), h.on}
}
