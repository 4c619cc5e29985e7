// Package etcdproc runs an etcd server binary as a process on 127.0.0.1,
// for tests against etcd versions other than the embedded one: Debian's
// etcd-server package is etcd 3.4.
//
// EnvRequire names the environment variable CI sets: with it, a test fails
// when the binary is missing; without it, the test is skipped and says why.
package etcdproc

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/etcdlb/etcdlb/internal/embedetcd"
	"github.com/etcdlb/etcdlb/internal/syncbuf"
)

// EnvRequire, when set, makes a missing etcd 3.4 binary a failure.
const EnvRequire = "ETCDLB_ETCD34"

// EnvBinary, when set, is the path of the etcd binary; else etcd on PATH.
const EnvBinary = "ETCDLB_ETCD34_BIN"

// RootPassword is the password of user "root" when auth is on.
const RootPassword = embedetcd.RootPassword

// Proc is a running single-member etcd.
type Proc struct {
	Version   string // as etcd --version says, e.g. "3.4.23"
	auth      bool
	endpoints []string
}

// Endpoints are the client URLs.
func (p *Proc) Endpoints() []string { return p.endpoints }

// Client returns a client of p, logged in as root when auth is on, closed
// at the test's end.
func (p *Proc) Client(t testing.TB) *clientv3.Client {
	t.Helper()
	cfg := clientv3.Config{Endpoints: p.endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()}
	if p.auth {
		cfg.Username, cfg.Password = "root", RootPassword
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// Start34 starts etcd 3.4 with a temporary data directory, on free
// 127.0.0.1 ports, with auth on if auth, and stops it at the test's end.
func Start34(t testing.TB, auth bool) *Proc {
	t.Helper()
	bin := binary(t)
	out, err := exec.Command(bin, "--version").Output()
	version := ""
	if _, v, ok := strings.Cut(string(out), "etcd Version: "); ok {
		version, _, _ = strings.Cut(v, "\n")
	}
	if err != nil || !strings.HasPrefix(version, "3.4.") {
		missing(t, fmt.Sprintf("%s is not etcd 3.4 (version %q, %v)", bin, version, err))
	}
	var p *Proc
	for attempt := 0; ; attempt++ {
		p, err = start(t, bin, version)
		if err == nil || attempt == 4 {
			break
		}
		t.Logf("etcd %s: %v; trying other ports", version, err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if auth {
		if err := embedetcd.EnableRootAuth(clientv3.Config{Endpoints: p.endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()}); err != nil {
			t.Fatalf("etcdproc: %v", err)
		}
		p.auth = true
	}
	return p
}

func binary(t testing.TB) string {
	if b := os.Getenv(EnvBinary); b != "" {
		return b
	}
	b, err := exec.LookPath("etcd")
	if err != nil {
		missing(t, "no etcd binary on PATH (apt-get install etcd-server)")
	}
	return b
}

func missing(t testing.TB, why string) {
	t.Helper()
	if os.Getenv(EnvRequire) != "" {
		t.Fatalf("etcd 3.4 required (%s is set): %s", EnvRequire, why)
	}
	t.Skipf("skipped: %s; set %s=1 to make this a failure", why, EnvRequire)
}

// start runs etcd on two ports that were free a moment ago and waits for
// it to answer.
func start(t testing.TB, bin, version string) (*Proc, error) {
	ports, err := embedetcd.FreePorts(2)
	if err != nil {
		return nil, err
	}
	client := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	peer := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	cmd := exec.Command(bin,
		"--name=p", "--data-dir="+t.TempDir(),
		"--listen-client-urls="+client, "--advertise-client-urls="+client,
		"--listen-peer-urls="+peer, "--initial-advertise-peer-urls="+peer,
		"--initial-cluster=p="+peer, "--logger=zap", "--log-level=error",
		"--bcrypt-cost=4")
	var stderr syncbuf.Buffer // etcd's output, for an error message
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	stop := func() { cmd.Process.Kill(); <-exited }
	p := &Proc{Version: version, endpoints: []string{client}}
	cli, err := clientv3.New(clientv3.Config{Endpoints: p.endpoints, DialTimeout: time.Second, Logger: zap.NewNop()})
	if err != nil {
		stop()
		return nil, err
	}
	defer cli.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := cli.Get(ctx, "health")
		cancel()
		select {
		case <-exited:
			return nil, fmt.Errorf("etcd exited: %s", stderr.String())
		default:
		}
		if err == nil {
			t.Cleanup(stop)
			return p, nil
		}
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("etcd not ready after 30s: %v; %s", err, stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
