package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/etcdlb/etcdlb/internal/embedetcd"
)

// otherCA writes a CA certificate that signed nothing etcd has.
func otherCA(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "some other CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "other-ca.pem")
	if err := os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// expect runs etcdlb and checks its exit code and that its stdout (exit 0)
// or stderr (otherwise) contains every want.
func expect(t *testing.T, env []string, code int, want []string, args ...string) result {
	t.Helper()
	r := etcdlb(t, 30*time.Second, env, args...)
	out := r.stdout
	if code != 0 {
		out = r.stderr
	}
	if r.code != code {
		t.Errorf("%s etcdlb %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(env, " "), strings.Join(args, " "), r.code, code, r.stdout, r.stderr)
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("%s etcdlb %s: output lacks %q\nstdout: %s\nstderr: %s", strings.Join(env, " "), strings.Join(args, " "), w, r.stdout, r.stderr)
		}
	}
	return r
}

func TestTLS(t *testing.T) {
	c := embedetcd.StartT(t, embedetcd.Options{TLS: true})
	ca, cert, key := c.CertFiles()
	ep := c.Endpoints()[0]
	bare := strings.TrimPrefix(ep, "https://")
	if _, err := c.ClientT(t).Put(t.Context(), "echo/127.0.0.1:1001", `{"addr":"127.0.0.1:1001","weight":4}`); err != nil {
		t.Fatal(err)
	}
	row := []string{"echo", "127.0.0.1:1001", "4"}

	expect(t, nil, 0, row, "ls", "echo", "--endpoints="+ep, "--cacert="+ca, "--cert="+cert, "--key="+key)
	// A bare host:port is https when TLS is configured.
	expect(t, nil, 0, row, "ls", "echo", "--endpoints="+bare, "--cacert", ca, "--cert", cert, "--key", key)
	expect(t, []string{"ETCDCTL_ENDPOINTS=" + ep, "ETCDCTL_CACERT=" + ca, "ETCDCTL_CERT=" + cert, "ETCDCTL_KEY=" + key}, 0, row, "ls", "echo")

	// A CA that did not sign etcd's certificate.
	expect(t, nil, 1, []string{"etcdlb ls: etcd at " + ep + ": bad certificates:", "unknown authority"},
		"ls", "--endpoints="+ep, "--cacert="+otherCA(t), "--cert="+cert, "--key="+key, "--dial-timeout=1s")
	// No client certificate, which etcd requires.
	expect(t, nil, 1, []string{"etcdlb ls: etcd at " + ep + ": bad certificates: etcd requires a client certificate: give --cert and --key", "certificate required"},
		"ls", "--endpoints="+ep, "--cacert="+ca, "--dial-timeout=1s")
	// Every endpoint that refused is named, not the first only.
	expect(t, nil, 1, []string{"etcdlb ls: etcd at " + ep + ", https://" + bare + ": bad certificates: etcd requires a client certificate"},
		"ls", "--endpoints="+ep+","+bare, "--cacert="+ca, "--dial-timeout=1s")
	// An explicit http:// endpoint of a TLS etcd, with and without the TLS flags.
	plain := "http://" + bare
	expect(t, nil, 1, []string{"etcdlb ls: etcd at " + plain + ": it serves TLS, and the endpoint says http://: use https://"},
		"ls", "--endpoints="+plain, "--cacert="+ca, "--cert="+cert, "--key="+key, "--dial-timeout=1s")
	expect(t, nil, 1, []string{"etcdlb ls: etcd at " + plain + ": it serves TLS, and the endpoint says http://: use https:// and give --cacert"},
		"ls", "--endpoints="+plain, "--dial-timeout=1s")
	// A key that is not the certificate's.
	expect(t, nil, 1, []string{"bad certificates: --cert " + cert + " / --key " + ca},
		"ls", "--endpoints="+ep, "--cacert="+ca, "--cert="+cert, "--key="+ca)
	// No TLS flag at all against a TLS etcd.
	expect(t, nil, 1, []string{"etcdlb ls: etcd at " + bare + ": it serves TLS: give --cacert"},
		"ls", "--endpoints="+bare, "--dial-timeout=1s")
}

func TestAuth(t *testing.T) {
	c := embedetcd.StartT(t, embedetcd.Options{Auth: true})
	ep := "--endpoints=" + c.Endpoints()[0]
	if _, err := c.ClientT(t).Put(t.Context(), "echo/127.0.0.1:1001", `{"addr":"127.0.0.1:1001"}`); err != nil {
		t.Fatal(err)
	}
	row := []string{"echo", "127.0.0.1:1001"}
	pw := embedetcd.RootPassword

	expect(t, nil, 0, row, "ls", "echo", ep, "--user=root", "--password="+pw)
	expect(t, nil, 0, row, "ls", "echo", ep, "--user", "root:"+pw)
	expect(t, []string{"ETCDCTL_USER=root", "ETCDCTL_PASSWORD=" + pw}, 0, row, "ls", "echo", ep)
	expect(t, []string{"ETCDCTL_USER=root:" + pw}, 0, row, "ls", "echo", ep)
	// The weight command writes under auth too.
	expect(t, nil, 0, []string{"weight override 7"}, "weight", "echo", "127.0.0.1:1001", "7", ep, "--user=root:"+pw)

	expect(t, nil, 1, []string{"etcdlb ls: etcd at " + c.Endpoints()[0] + `: login as "root" refused (--user, --password): etcdserver: authentication failed`},
		"ls", "echo", ep, "--user=root", "--password=wrong")
	expect(t, []string{"ETCDCTL_USER=root:wrong"}, 1, []string{"login as \"root\" refused"}, "drain", "echo", "127.0.0.1:1001", ep)
	expect(t, nil, 1, []string{"etcdlb ls: etcd at " + c.Endpoints()[0] + " has authentication on: give --user"}, "ls", "echo", ep)
	// TLS flags against an etcd without TLS.
	bare := strings.TrimPrefix(c.Endpoints()[0], "http://")
	expect(t, nil, 1, []string{"etcdlb ls: etcd at https://" + bare + ": it closed the connection in the TLS handshake: it does not serve TLS?"},
		"ls", "--endpoints="+bare, "--cacert="+otherCA(t), "--dial-timeout=1s")
}
