// Package etcdutil holds what the resolver and the registry both need of an
// etcd client: errors that name the key, the user and the missing
// permission (Explain), why etcd cannot be reached (WithCause), the options
// they share and the backoff between retries.
package etcdutil

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Common are the options of both the resolver and the registry.
type Common struct {
	Prefix         string
	Logger         *slog.Logger
	BackoffMin     time.Duration
	BackoffMax     time.Duration
	RequestTimeout time.Duration
}

// Defaults returns the default Common options.
func Defaults() Common {
	return Common{
		Logger:         slog.Default(),
		BackoffMin:     100 * time.Millisecond,
		BackoffMax:     5 * time.Second,
		RequestTimeout: 5 * time.Second,
	}
}

// SetLogger sets the logger; nil discards.
func (c *Common) SetLogger(l *slog.Logger) {
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	c.Logger = l
}

// SetBackoff sets the bounds of the backoff; zero keeps a bound.
func (c *Common) SetBackoff(lo, hi time.Duration) {
	if lo > 0 {
		c.BackoffMin = lo
	}
	if hi > 0 {
		c.BackoffMax = hi
	}
	c.BackoffMax = max(c.BackoffMax, c.BackoffMin)
}

// SetRequestTimeout sets the request timeout; zero or less keeps it.
func (c *Common) SetRequestTimeout(d time.Duration) {
	if d > 0 {
		c.RequestTimeout = d
	}
}

// Backoff returns the jittered wait before retry n (0-based): exponential
// from BackoffMin, capped at BackoffMax, with full jitter in [d/2, d).
func (c *Common) Backoff(n int) time.Duration {
	d := c.BackoffMin
	for i := 0; i < n && d < c.BackoffMax; i++ {
		d *= 2
	}
	d = min(d, c.BackoffMax)
	return d/2 + rand.N(d/2+1)
}

// ResetConnectBackoff has cli reconnect now if it is waiting out gRPC's
// reconnect backoff, which grows to 120s while etcd is down and knows nothing
// of leases. Without it, an etcd back after an outage of a few seconds revives
// the leases for one TTL (plus an election timeout) while a registration's
// client may wait longer than that to reconnect: the leases expire and the
// registrations vanish at once; and a resolver's client may see changes only
// that much later. Call it only before a retry of a failed request, so that
// it connects no more often than the caller's own backoff.
func ResetConnectBackoff(cli *clientv3.Client) {
	if conn := cli.ActiveConnection(); conn != nil {
		conn.ResetConnectBackoff()
	}
}

// Sleep waits for d or until ctx ends; it reports whether d passed.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
