package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/etcdlb/etcdlb/registry"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// connFlags are etcdctl's connection flags, with the ETCDCTL_* environment
// variables as defaults, plus etcdlb's key prefix.
type connFlags struct {
	endpoints   string
	cacert      string
	cert        string
	key         string
	user        string
	password    string
	dialTimeout time.Duration
	prefix      string

	envErr error // a bad ETCDCTL_* value, unless its flag overrides it
}

// check returns the error of a bad environment variable whose flag was not
// given, and of a --dial-timeout that is not positive.
func (cf *connFlags) check(fs *flag.FlagSet) error {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == "dial-timeout" })
	switch {
	case set && cf.dialTimeout <= 0:
		return fmt.Errorf("--dial-timeout %v: want a positive duration such as 2s", cf.dialTimeout)
	case !set && cf.envErr != nil:
		return cf.envErr
	}
	return nil
}

const connHelp = `
Connection flags default to the ETCDCTL_* environment variables, as in
etcdctl: ETCDCTL_ENDPOINTS, ETCDCTL_CACERT, ETCDCTL_CERT, ETCDCTL_KEY,
ETCDCTL_USER, ETCDCTL_PASSWORD, ETCDCTL_DIAL_TIMEOUT; ETCDLB_PREFIX for
--prefix. A --user without a password is asked for it on the terminal.
Flags may come before or after the arguments.
`

func (cf *connFlags) register(e *env, fs *flag.FlagSet) {
	def := func(name, fallback string) string {
		if v := e.getenv(name); v != "" {
			return v
		}
		return fallback
	}
	fs.StringVar(&cf.endpoints, "endpoints", def("ETCDCTL_ENDPOINTS", "127.0.0.1:2379"), "etcd endpoints, comma-separated")
	fs.StringVar(&cf.cacert, "cacert", def("ETCDCTL_CACERT", ""), "verify etcd's certificate with this CA bundle")
	fs.StringVar(&cf.cert, "cert", def("ETCDCTL_CERT", ""), "client certificate file for TLS")
	fs.StringVar(&cf.key, "key", def("ETCDCTL_KEY", ""), "client key file for TLS")
	fs.StringVar(&cf.user, "user", def("ETCDCTL_USER", ""), "username[:password] for etcd's authentication")
	fs.StringVar(&cf.password, "password", def("ETCDCTL_PASSWORD", ""), "password for --user (when it has no :password)")
	dt := 2 * time.Second
	if v := e.getenv("ETCDCTL_DIAL_TIMEOUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			cf.envErr = fmt.Errorf("ETCDCTL_DIAL_TIMEOUT=%q: want a positive duration such as 2s", v)
		}
		dt = d
	}
	fs.DurationVar(&cf.dialTimeout, "dial-timeout", dt, "how long to wait for etcd before giving up")
	fs.StringVar(&cf.prefix, "prefix", def("ETCDLB_PREFIX", ""), "key prefix the services are registered under (registry.WithPrefix)")
}

func (cf *connFlags) endpointList() []string {
	var eps []string
	for _, ep := range strings.Split(cf.endpoints, ",") {
		if ep = strings.TrimSpace(ep); ep != "" {
			eps = append(eps, ep)
		}
	}
	return eps
}

// opts are the registry options the flags select.
func (cf *connFlags) opts() []registry.Option {
	return []registry.Option{registry.WithPrefix(cf.prefix)}
}

// tlsConfig loads the certificates; nil when no TLS flag is set.
func (cf *connFlags) tlsConfig() (*tls.Config, error) {
	if cf.cacert == "" && cf.cert == "" && cf.key == "" {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if cf.cacert != "" {
		pem, err := os.ReadFile(cf.cacert)
		if err != nil {
			return nil, fmt.Errorf("bad certificates: --cacert: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("bad certificates: --cacert %s holds no PEM certificate", cf.cacert)
		}
		cfg.RootCAs = pool
	}
	if (cf.cert == "") != (cf.key == "") {
		return nil, errors.New("bad certificates: --cert and --key go together")
	}
	if cf.cert != "" {
		pair, err := tls.LoadX509KeyPair(cf.cert, cf.key)
		if err != nil {
			return nil, fmt.Errorf("bad certificates: --cert %s / --key %s: %w", cf.cert, cf.key, err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

// connect returns a client that has reached etcd within --dial-timeout.
func (cf *connFlags) connect(ctx context.Context) (*clientv3.Client, error) {
	eps := cf.endpointList()
	if len(eps) == 0 {
		return nil, errors.New("no etcd endpoints (--endpoints or ETCDCTL_ENDPOINTS)")
	}
	tlsCfg, err := cf.tlsConfig()
	if err != nil {
		return nil, err
	}
	user, pass := cf.user, cf.password
	if u, p, ok := strings.Cut(user, ":"); ok {
		user, pass = u, p
	} else if user != "" && pass == "" {
		// As etcdctl: a user without a password is asked for it.
		if pass, err = readPassword("Password: "); err != nil {
			return nil, fmt.Errorf("--user %q has no password, and %v: give --password, --user %s:PASSWORD or ETCDCTL_PASSWORD", user, err, user)
		}
	}
	if tlsCfg != nil {
		// A bare host:port means https when TLS is configured.
		for i, ep := range eps {
			if !strings.Contains(ep, "://") {
				eps[i] = "https://" + ep
			}
		}
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints: eps, TLS: tlsCfg, Username: user, Password: pass,
		DialTimeout: cf.dialTimeout, Logger: zap.NewNop(),
	})
	if err != nil {
		return nil, cf.unreachable(err, cf.dialTimeout, eps, tlsCfg)
	}
	start := time.Now()
	pctx, cancel := context.WithTimeout(ctx, cf.dialTimeout)
	defer cancel()
	if _, err := cli.MemberList(pctx); err != nil {
		cli.Close()
		return nil, cf.unreachable(err, time.Since(start), eps, tlsCfg)
	}
	return cli, nil
}

// errNotTerminal is why a password cannot be asked for.
var errNotTerminal = errors.New("stdin is not a terminal to ask for it on")

// unreachable explains a failure to reach etcd: which endpoints, after
// how long, and why: etcd's own answer (a login refused), or, when grpc only
// says it timed out, what a TLS handshake with each endpoint tells.
func (cf *connFlags) unreachable(err error, after time.Duration, eps []string, tlsCfg *tls.Config) error {
	var ee rpctypes.EtcdError
	switch {
	case errors.Is(err, rpctypes.ErrAuthFailed):
		return fmt.Errorf("etcd at %s: login as %q refused (--user, --password): %s", cf.endpoints, cf.userName(), rpctypes.ErrorDesc(err))
	case errors.Is(err, rpctypes.ErrUserEmpty):
		return fmt.Errorf("etcd at %s has authentication on: give --user (and --password)", cf.endpoints)
	case errors.As(err, &ee):
		return fmt.Errorf("etcd at %s: %s", cf.endpoints, ee.Error())
	}
	msg := err.Error()
	if s, ok := status.FromError(err); ok && s.Code() != codes.Unknown {
		msg = s.Message()
	}
	if strings.Contains(msg, "x509") || strings.Contains(msg, "tls:") || strings.Contains(msg, "certificate") {
		return fmt.Errorf("etcd at %s: bad certificates: %s", cf.endpoints, msg)
	}
	if s, ok := status.FromError(err); ok && (s.Code() == codes.Unauthenticated || s.Code() == codes.PermissionDenied || s.Code() == codes.InvalidArgument) {
		return fmt.Errorf("etcd at %s: %s", cf.endpoints, msg)
	}
	if why := probeAll(eps, tlsCfg); why != "" {
		return errors.New(why)
	}
	return fmt.Errorf("etcd unreachable at %s after %v: %s", cf.endpoints, after.Round(100*time.Millisecond), msg)
}

func (cf *connFlags) userName() string {
	u, _, _ := strings.Cut(cf.user, ":")
	return u
}

// probeAll probes every endpoint as probeTLS does, at once, and says what
// it found, naming each endpoint that told it; "" when none did.
func probeAll(eps []string, tlsCfg *tls.Config) string {
	whys := make([]string, len(eps))
	var wg sync.WaitGroup
	for i, ep := range eps {
		wg.Go(func() { whys[i] = probeTLS(ep, tlsCfg, time.Second) })
	}
	wg.Wait()
	var out []string
	for i, why := range whys {
		if why == "" || slices.Contains(whys[:i], why) {
			continue
		}
		var at []string
		for j, w := range whys {
			if w == why {
				at = append(at, eps[j])
			}
		}
		out = append(out, fmt.Sprintf("etcd at %s: %s", strings.Join(at, ", "), why))
	}
	return strings.Join(out, "; ")
}

// probeTLS connects to ep and shakes hands as the client would, to tell
// why grpc timed out: a certificate one side refuses, or TLS on one side
// only. It returns "" when it cannot tell (etcd down, or fine). The client
// speaks TLS to https:// endpoints only (a bare host:port was made https://
// when TLS is configured), with the TLS flags' config or, without them, the
// system's roots.
func probeTLS(ep string, tlsCfg *tls.Config, timeout time.Duration) string {
	scheme, hostport, ok := strings.Cut(ep, "://")
	if !ok {
		scheme, hostport = "http", ep
	}
	if scheme != "http" && scheme != "https" {
		return "" // unix sockets and the like
	}
	hostport, _, _ = strings.Cut(hostport, "/")
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return ""
	}
	raw, err := net.DialTimeout("tcp", hostport, timeout)
	if err != nil {
		return ""
	}
	defer raw.Close()
	raw.SetDeadline(time.Now().Add(timeout))
	if scheme == "http" {
		// Does it serve TLS, which we do not speak?
		if tls.Client(raw, &tls.Config{InsecureSkipVerify: true}).Handshake() != nil {
			return ""
		}
		switch {
		case ok && tlsCfg != nil:
			return "it serves TLS, and the endpoint says http://: use https://"
		case ok:
			return "it serves TLS, and the endpoint says http://: use https:// and give --cacert (and --cert and --key if it wants a client certificate)"
		}
		return "it serves TLS: give --cacert (and --cert and --key if it wants a client certificate)"
	}
	cfg := &tls.Config{}
	if tlsCfg != nil {
		cfg = tlsCfg.Clone()
	}
	if cfg.ServerName == "" {
		cfg.ServerName = host
	}
	conn := tls.Client(raw, cfg)
	if err := conn.Handshake(); err != nil {
		var re tls.RecordHeaderError
		switch {
		case errors.As(err, &re):
			return "it does not serve TLS: use http:// and no --cacert, --cert, --key"
		case errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET):
			// etcd's port multiplexer closes what it does not recognise.
			return "it closed the connection in the TLS handshake: it does not serve TLS? (then use http:// and no --cacert, --cert, --key)"
		case isTimeout(err):
			return ""
		}
		return "bad certificates: " + err.Error()
	}
	// With TLS 1.3 the server checks our certificate after the handshake:
	// a refusal is an alert on the first read (a good server sends its
	// HTTP/2 settings instead).
	if _, err := conn.Read(make([]byte, 1)); err != nil && !isTimeout(err) && strings.Contains(err.Error(), "tls:") {
		if len(cfg.Certificates) == 0 {
			return "bad certificates: etcd requires a client certificate: give --cert and --key (" + err.Error() + ")"
		}
		return "bad certificates: etcd refused the client certificate (--cert, --key): " + err.Error()
	}
	return ""
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
