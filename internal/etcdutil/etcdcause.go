package etcdutil

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/connectivity"
)

// probeTimeout bounds the dial that finds out why etcd does not answer.
const probeTimeout = 500 * time.Millisecond

// WithCause adds to err, when it is a bare timeout (the etcd client waits
// for a connection until the deadline and then says no more), why etcd could
// not be reached; see Unreachable.
func WithCause(cli *clientv3.Client, err error) error {
	if !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if why := Unreachable(cli); why != nil {
		return fmt.Errorf("%w (%v)", err, why)
	}
	return fmt.Errorf("%w (etcd at %s is connected but did not answer in time)", err, strings.Join(cli.Endpoints(), ","))
}

// Unreachable says why cli cannot reach etcd: the error of a TCP dial to
// each of its endpoints (e.g. connection refused), or, when every one
// answers, the state of the client's connection (a TLS handshake etcd
// refuses leaves it in TRANSIENT_FAILURE). Nil when nothing looks wrong.
func Unreachable(cli *clientv3.Client) error {
	eps := cli.Endpoints()
	errs := make([]error, len(eps))
	var wg sync.WaitGroup
	for i, ep := range eps {
		wg.Go(func() {
			network, addr := dialAddr(ep)
			if c, err := net.DialTimeout(network, addr, probeTimeout); err != nil {
				errs[i] = err
			} else {
				c.Close()
			}
		})
	}
	wg.Wait()
	var msg []string
	for i, err := range errs {
		switch {
		case err == nil:
		case len(eps) == 1:
			msg = append(msg, err.Error())
		default:
			msg = append(msg, fmt.Sprintf("%s: %v", eps[i], err))
		}
	}
	if len(msg) == 0 {
		conn := cli.ActiveConnection()
		if conn == nil || conn.GetState() == connectivity.Ready {
			return nil
		}
		msg = append(msg, "accepts TCP connections, but the etcd connection is "+conn.GetState().String()+" (TLS or certificates?)")
	}
	return fmt.Errorf("etcd at %s: %s", strings.Join(eps, ","), strings.Join(msg, "; "))
}

// dialAddr turns an etcd client endpoint (host:port, http://host:port,
// unix://path) into what net.Dial takes.
func dialAddr(ep string) (network, addr string) {
	u, err := url.Parse(ep)
	if err != nil || !strings.Contains(ep, "://") {
		return "tcp", ep
	}
	switch u.Scheme {
	case "unix", "unixs":
		return "unix", u.Host + u.Path
	}
	return "tcp", u.Host
}
