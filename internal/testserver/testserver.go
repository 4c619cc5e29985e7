// Package testserver runs real gRPC backends on 127.0.0.1 for tests, the
// demo and benchmarks: grpc's interop TestService, counting the calls each
// backend serves and the TCP connections it accepts.
package testserver

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
)

// Server is one backend. Its address stays the same across Stop and Start.
type Server struct {
	testgrpc.UnimplementedTestServiceServer

	// Addr is the backend's host:port on 127.0.0.1.
	Addr string

	calls    atomic.Int64
	accepted atomic.Int64
	inflight atomic.Int64
	delay    atomic.Int64 // nanoseconds each call takes
	handler  atomic.Pointer[func(context.Context) error]
	failN    atomic.Int64 // every failN-th call answers UNAVAILABLE; 0: none

	mu   sync.Mutex
	srv  *grpc.Server
	done chan struct{}
}

// Start starts a backend on a port chosen by the OS.
func Start() (*Server, error) {
	return StartAt("127.0.0.1:0")
}

// StartAt starts a backend on addr.
func StartAt(addr string) (*Server, error) {
	s := &Server{}
	if err := s.listen(addr); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Server) listen(addr string) error {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("testserver: listen on %s: %w", addr, err)
	}
	srv := grpc.NewServer()
	testgrpc.RegisterTestServiceServer(srv, s)
	done := make(chan struct{})
	s.mu.Lock()
	s.Addr = lis.Addr().String()
	s.srv, s.done = srv, done
	s.mu.Unlock()
	go func() {
		defer close(done)
		srv.Serve(countingListener{lis, &s.accepted})
	}()
	return nil
}

// Restart starts serving again on the same address after Stop.
func (s *Server) Restart() error { return s.listen(s.Addr) }

// Stop stops the backend at once, failing calls in flight.
func (s *Server) Stop() { s.stop(false) }

// GracefulStop stops accepting calls and waits for those in flight.
func (s *Server) GracefulStop() { s.stop(true) }

func (s *Server) stop(graceful bool) {
	s.mu.Lock()
	srv, done := s.srv, s.done
	s.srv = nil
	s.mu.Unlock()
	if srv == nil {
		return
	}
	if graceful {
		srv.GracefulStop()
	} else {
		srv.Stop()
	}
	<-done
}

// Calls is how many calls the backend has served.
func (s *Server) Calls() int64 { return s.calls.Load() }

// Accepted is how many TCP connections the backend has accepted.
func (s *Server) Accepted() int64 { return s.accepted.Load() }

// Inflight is how many calls the backend is serving now.
func (s *Server) Inflight() int64 { return s.inflight.Load() }

// SetDelay makes every call take d.
func (s *Server) SetDelay(d time.Duration) { s.delay.Store(int64(d)) }

// SetHandler makes every call run h instead of the delay, and fail with
// h's error if it returns one: a load benchmark models service time,
// queueing and failures with it. nil restores the delay.
func (s *Server) SetHandler(h func(ctx context.Context) error) {
	if h == nil {
		s.handler.Store(nil)
		return
	}
	s.handler.Store(&h)
}

// SetFailEvery makes every n-th call answer UNAVAILABLE (a flaky backend);
// 0 turns it off.
func (s *Server) SetFailEvery(n int) { s.failN.Store(int64(n)) }

// EmptyCall counts the call and answers after the backend's delay.
func (s *Server) EmptyCall(ctx context.Context, _ *testpb.Empty) (*testpb.Empty, error) {
	n := s.calls.Add(1)
	s.inflight.Add(1)
	defer s.inflight.Add(-1)
	if h := s.handler.Load(); h != nil {
		if err := (*h)(ctx); err != nil {
			return nil, err
		}
		return &testpb.Empty{}, nil
	}
	if f := s.failN.Load(); f > 0 && n%f == 0 {
		return nil, status.Errorf(codes.Unavailable, "testserver %s: flaky: call %d of every %d fails", s.Addr, n, f)
	}
	if d := time.Duration(s.delay.Load()); d > 0 {
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return &testpb.Empty{}, nil
}

type countingListener struct {
	net.Listener
	n *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}
