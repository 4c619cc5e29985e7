// Package embedetcd runs an embedded etcd server or cluster on 127.0.0.1 for
// tests, benchmarks and the demo.
package embedetcd

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// RootPassword is the password of user "root" when Options.Auth is set.
const RootPassword = "etcdlb-root-password"

// Options configure a Cluster. The zero value is one plain member.
type Options struct {
	// Members is the number of members, 1 when 0.
	Members int
	// TLS serves clients over TLS and requires client certificates, made
	// fresh for the cluster and signed by its own CA.
	TLS bool
	// Auth enables authentication; ClientConfig logs in as root.
	Auth bool
	// Dir holds the data; a new temporary directory, removed by Close,
	// when empty.
	Dir string
	// StartTimeout bounds the wait for a quorum; 30s when 0.
	StartTimeout time.Duration
	// Logs sends etcd's error logs to stderr; they are discarded otherwise
	// (a stopped member logs errors that are expected here).
	Logs bool
}

// Cluster is a running embedded etcd.
type Cluster struct {
	opts    Options
	dir     string
	tempDir bool
	certs   *certs

	mu      sync.Mutex
	members []*member
}

type member struct {
	name       string
	dir        string
	clientPort int
	peerPort   int
	etcd       *embed.Etcd // nil when stopped
	release    []func()    // frees the ports held while stopped
}

// holdPorts keeps the stopped member's ports from other processes.
func (m *member) holdPorts() {
	m.release = append(m.release, reservePort(m.clientPort), reservePort(m.peerPort))
}

func (m *member) releasePorts() {
	for _, f := range m.release {
		f()
	}
	m.release = nil
}

// Start starts a cluster and waits until it has a leader.
func Start(opts Options) (*Cluster, error) {
	if opts.Members <= 0 {
		opts.Members = 1
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = 30 * time.Second
	}
	c := &Cluster{opts: opts, dir: opts.Dir}
	if c.dir == "" {
		d, err := os.MkdirTemp("", "embedetcd-")
		if err != nil {
			return nil, err
		}
		c.dir, c.tempDir = d, true
	}
	if opts.TLS {
		cs, err := makeCerts(filepath.Join(c.dir, "certs"))
		if err != nil {
			c.removeDir()
			return nil, err
		}
		c.certs = cs
	}
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		if err = c.startNew(); err == nil || !isAddrInUse(err) {
			break
		}
	}
	if err != nil {
		c.removeDir()
		return nil, err
	}
	if opts.Auth {
		if err := c.enableAuth(); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

// StartT starts a cluster for a test or benchmark and closes it in Cleanup.
func StartT(t testing.TB, opts Options) *Cluster {
	t.Helper()
	c, err := Start(opts)
	if err != nil {
		t.Fatalf("embedetcd: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// startNew picks fresh ports and starts every member of a new cluster.
func (c *Cluster) startNew() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.members = nil
	var initial []string
	for i := 0; i < c.opts.Members; i++ {
		ports, err := FreePorts(2)
		if err != nil {
			return err
		}
		m := &member{
			name:       fmt.Sprintf("m%d", i),
			clientPort: ports[0],
			peerPort:   ports[1],
		}
		m.dir = filepath.Join(c.dir, m.name)
		_ = os.RemoveAll(m.dir)
		c.members = append(c.members, m)
		initial = append(initial, fmt.Sprintf("%s=http://127.0.0.1:%d", m.name, m.peerPort))
	}
	var errs []error
	for _, m := range c.members {
		errs = append(errs, c.startMemberLocked(m, strings.Join(initial, ",")))
	}
	if err := errors.Join(errs...); err != nil {
		c.stopAllLocked()
		return err
	}
	return c.waitReadyLocked(c.members)
}

func (c *Cluster) config(m *member, initialCluster string) *embed.Config {
	cfg := embed.NewConfig()
	cfg.Name = m.name
	cfg.Dir = m.dir
	cfg.LogLevel = "error"
	// bcrypt's cheapest cost: at the default (10) one password check takes
	// seconds in a -race binary on a loaded machine, longer than the CLI's
	// 2 s dial timeout, and the auth tests failed so.
	cfg.BcryptCost = 4
	cfg.LogOutputs = []string{"stderr"}
	if !c.opts.Logs {
		cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	}
	scheme := "http"
	if c.certs != nil {
		scheme = "https"
		cfg.ClientTLSInfo = c.certs.serverInfo()
	}
	cu := url.URL{Scheme: scheme, Host: fmt.Sprintf("127.0.0.1:%d", m.clientPort)}
	pu := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", m.peerPort)}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{cu}, []url.URL{cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{pu}, []url.URL{pu}
	cfg.InitialCluster = initialCluster
	cfg.InitialClusterToken = "embedetcd"
	// Faster elections, so tests that stop a member wait less.
	cfg.TickMs = 50
	cfg.ElectionMs = 500
	return cfg
}

func (c *Cluster) startMemberLocked(m *member, initialCluster string) error {
	e, err := embed.StartEtcd(c.config(m, initialCluster))
	if err != nil {
		return fmt.Errorf("embedetcd: start %s: %w", m.name, err)
	}
	m.etcd = e
	return nil
}

func (c *Cluster) waitReadyLocked(ms []*member) error {
	deadline := time.After(c.opts.StartTimeout)
	for _, m := range ms {
		select {
		case <-m.etcd.Server.ReadyNotify():
		case err := <-m.etcd.Err():
			c.stopAllLocked()
			return fmt.Errorf("embedetcd: %s: %w", m.name, err)
		case <-deadline:
			c.stopAllLocked()
			return fmt.Errorf("embedetcd: %s not ready after %v", m.name, c.opts.StartTimeout)
		}
	}
	return nil
}

func (c *Cluster) initialClusterLocked() string {
	var s []string
	for _, m := range c.members {
		s = append(s, fmt.Sprintf("%s=http://127.0.0.1:%d", m.name, m.peerPort))
	}
	return strings.Join(s, ",")
}

// Endpoints returns the client URLs of all members, running or not.
func (c *Cluster) Endpoints() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var eps []string
	for i := range c.members {
		eps = append(eps, c.endpointLocked(i))
	}
	return eps
}

// Endpoint returns the client URL of member i.
func (c *Cluster) Endpoint(i int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.endpointLocked(i)
}

func (c *Cluster) endpointLocked(i int) string {
	scheme := "http"
	if c.certs != nil {
		scheme = "https"
	}
	return fmt.Sprintf("%s://127.0.0.1:%d", scheme, c.members[i].clientPort)
}

// ClientConfig returns a client config for all members, with the client
// certificate and the root login when the cluster has them, and no logging.
func (c *Cluster) ClientConfig() clientv3.Config {
	cfg := clientv3.Config{
		Endpoints:   c.Endpoints(),
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	}
	if c.certs != nil {
		cfg.TLS = c.certs.clientConfig(true)
	}
	if c.opts.Auth {
		cfg.Username, cfg.Password = "root", RootPassword
	}
	return cfg
}

// Client returns a new client from ClientConfig; the caller closes it.
func (c *Cluster) Client() (*clientv3.Client, error) { return clientv3.New(c.ClientConfig()) }

// ClientT returns a new client closed in t's Cleanup.
func (c *Cluster) ClientT(t testing.TB) *clientv3.Client {
	t.Helper()
	cli, err := c.Client()
	if err != nil {
		t.Fatalf("embedetcd: client: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// TLSWithoutClientCert returns a TLS config that trusts the cluster's CA but
// offers no client certificate; nil when the cluster has no TLS.
func (c *Cluster) TLSWithoutClientCert() *tls.Config {
	if c.certs == nil {
		return nil
	}
	return c.certs.clientConfig(false)
}

// CertFiles returns the files of the cluster's CA certificate and of a
// client certificate and key it accepts, for tools that take files (etcdctl,
// etcdlb); empty when the cluster has no TLS.
func (c *Cluster) CertFiles() (ca, cert, key string) {
	if c.certs == nil {
		return "", "", ""
	}
	return c.certs.caFile, c.certs.clientCert, c.certs.clientKey
}

// Stop stops member i and keeps its data. Its ports stay reserved until
// Restart: connecting to them is refused, and no other process gets them.
func (c *Cluster) Stop(i int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.members[i]
	if m.etcd != nil {
		c.stopLocked(m)
		m.holdPorts()
	}
}

func (c *Cluster) stopLocked(m *member) {
	if m.etcd != nil {
		m.etcd.Close()
		m.etcd = nil
	}
}

func (c *Cluster) stopAllLocked() {
	for _, m := range c.members {
		c.stopLocked(m)
	}
}

// Restart starts the stopped member i again on its data and ports, and waits
// until it has joined.
func (c *Cluster) Restart(i int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.restartLocked(c.members[i], false)
}

// RestartEmpty stops member i if it runs and starts it again with no data,
// as after a disk loss. Only a one-member cluster can do this.
func (c *Cluster) RestartEmpty(i int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.members) != 1 {
		return errors.New("embedetcd: RestartEmpty needs a one-member cluster")
	}
	m := c.members[i]
	c.stopLocked(m)
	if err := os.RemoveAll(m.dir); err != nil {
		return err
	}
	if err := c.restartLocked(m, true); err != nil {
		return err
	}
	if c.opts.Auth {
		c.mu.Unlock()
		defer c.mu.Lock()
		return c.enableAuth()
	}
	return nil
}

func (c *Cluster) restartLocked(m *member, fresh bool) error {
	if m.etcd != nil {
		return fmt.Errorf("embedetcd: %s is running", m.name)
	}
	m.releasePorts()
	initial := c.initialClusterLocked()
	var err error
	// The ports were ours; a moment may pass before the OS lets them go.
	for attempt := 0; attempt < 20; attempt++ {
		cfg := c.config(m, initial)
		if !fresh {
			cfg.ClusterState = embed.ClusterStateFlagExisting
		}
		var e *embed.Etcd
		if e, err = embed.StartEtcd(cfg); err == nil {
			m.etcd = e
			break
		}
		if !isAddrInUse(err) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return err
	}
	if len(c.members) == 1 || !fresh {
		select {
		case <-m.etcd.Server.ReadyNotify():
		case err := <-m.etcd.Err():
			return err
		case <-time.After(c.opts.StartTimeout):
			return fmt.Errorf("embedetcd: %s not ready after restart", m.name)
		}
	}
	return nil
}

// Close stops every member and removes a temporary data directory.
func (c *Cluster) Close() {
	c.mu.Lock()
	c.stopAllLocked()
	for _, m := range c.members {
		m.releasePorts()
	}
	c.mu.Unlock()
	c.removeDir()
}

func (c *Cluster) removeDir() {
	if c.tempDir {
		_ = os.RemoveAll(c.dir)
	}
}

// enableAuth makes user root with the root role and turns auth on.
func (c *Cluster) enableAuth() error {
	cfg := c.ClientConfig()
	cfg.Username, cfg.Password = "", ""
	if err := EnableRootAuth(cfg); err != nil {
		return fmt.Errorf("embedetcd: %w", err)
	}
	return nil
}

// EnableRootAuth connects with cfg (no user yet), makes user root with
// password RootPassword and the root role, and turns auth on: for this
// package's servers and for an etcd process started by a test.
func EnableRootAuth(cfg clientv3.Config) error {
	cli, err := clientv3.New(cfg)
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx, cancel := contextTimeout(10 * time.Second)
	defer cancel()
	if _, err := cli.UserAdd(ctx, "root", RootPassword); err != nil {
		return fmt.Errorf("add root: %w", err)
	}
	if _, err := cli.UserGrantRole(ctx, "root", "root"); err != nil {
		return fmt.Errorf("grant root: %w", err)
	}
	if _, err := cli.AuthEnable(ctx); err != nil {
		return fmt.Errorf("enable auth: %w", err)
	}
	return nil
}

// FreePorts returns n ports that were free a moment ago. The caller retries
// on "address already in use": another process may take one meanwhile.
func FreePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func isAddrInUse(err error) bool {
	return err != nil && strings.Contains(err.Error(), "address already in use")
}
