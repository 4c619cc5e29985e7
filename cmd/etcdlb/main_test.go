package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// binDir holds the etcdlb binary, built on first use by binary (not by
// TestMain, so that fuzz workers, which run TestMain too, build nothing).
var (
	binDir   string
	buildBin sync.Once
	bin      string
	binErr   error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// binary returns the path of the etcdlb binary, built once.
func binary(t *testing.T) string {
	t.Helper()
	buildBin.Do(func() {
		if binDir, binErr = os.MkdirTemp("", "etcdlb-bin-"); binErr != nil {
			return
		}
		bin = filepath.Join(binDir, "etcdlb")
		args := []string{"build", "-o", bin}
		if raceEnabled {
			args = append(args, "-race")
		}
		if out, err := exec.Command("go", append(args, ".")...).CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return bin
}

// result is one run of the binary.
type result struct {
	stdout, stderr string
	code           int
}

// etcdlb runs the binary with args and env (KEY=VALUE, added to a clean
// environment), bounded by timeout.
func etcdlb(t *testing.T, timeout time.Duration, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary(t), args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("etcdlb %s: did not finish within %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), timeout, stdout.String(), stderr.String())
	}
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("etcdlb %s: %v", strings.Join(args, " "), err)
		}
		r.code = ee.ExitCode()
	}
	return r
}

func TestDemoShort(t *testing.T) {
	r := etcdlb(t, 90*time.Second, nil, "demo", "--short")
	if r.code != 0 {
		t.Fatalf("etcdlb demo --short: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if got := strings.Count(r.stdout, "PASS "); got != 7 {
		t.Errorf("etcdlb demo --short: %d checks passed, want 7 (six steps and the metrics)\n%s", got, r.stdout)
	}
	for _, want := range []string{"etcd is at http://127.0.0.1:", "metrics of the clients, resolvers and registrations: http://127.0.0.1:", "done: every check passed"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("etcdlb demo --short: output lacks %q\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "FAIL") {
		t.Errorf("etcdlb demo --short: a check failed\n%s", r.stdout)
	}
	// Piped, the view is plain lines: no terminal control, a line per
	// policy with its shares, calls/s and errors.
	if strings.Contains(r.stdout, "\x1b") {
		t.Errorf("etcdlb demo --short, piped, wrote terminal control sequences")
	}
	for _, p := range []string{"round_robin", "weighted", "least_inflight"} {
		if !regexp.MustCompile(`(?m)^ *[0-9.]+s +` + p + ` +a1 +[0-9]+%.* calls/s +[0-9]+ +errors [0-9]+$`).MatchString(r.stdout) {
			t.Errorf("etcdlb demo --short, piped: no plain line for %s\n%s", p, r.stdout)
		}
	}
}

func TestUsage(t *testing.T) {
	r := etcdlb(t, 10*time.Second, nil)
	if r.code != exitUsage || !strings.Contains(r.stderr, "Usage:") {
		t.Errorf("etcdlb: exit %d, stderr %q; want %d and the usage", r.code, r.stderr, exitUsage)
	}
	r = etcdlb(t, 10*time.Second, nil, "frobnicate")
	if r.code != exitUsage || !strings.Contains(r.stderr, `unknown command "frobnicate"`) {
		t.Errorf("etcdlb frobnicate: exit %d, stderr %q", r.code, r.stderr)
	}
	r = etcdlb(t, 10*time.Second, nil, "demo", "--help")
	if r.code != 0 || !strings.Contains(r.stdout, "Usage: etcdlb demo") || !strings.Contains(r.stdout, "-short") {
		t.Errorf("etcdlb demo --help: exit %d, stdout %q", r.code, r.stdout)
	}
	expect(t, nil, 0, []string{"Usage:", "etcdlb weight SERVICE ADDR N"}, "--help")
	expect(t, nil, 0, []string{"Usage: etcdlb weight SERVICE ADDR N", "-force"}, "help", "weight")
	// Help wins over wrong arguments and bad flags, wherever it stands.
	expect(t, nil, 0, []string{"Usage: etcdlb drain", "-endpoints"}, "drain", "echo", "--nosuch", "-h")
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"ls", "--nosuch"}, []string{"etcdlb ls: flag provided but not defined: -nosuch", "Usage: etcdlb ls", `Run "etcdlb ls --help"`}},
		{[]string{"ls", "--dial-timeout=soon"}, []string{`etcdlb ls: invalid value "soon" for flag -dial-timeout`}},
		{[]string{"watch"}, []string{"etcdlb watch: wrong number of arguments: got 0, want 1", "Usage: etcdlb watch SERVICE"}},
		{[]string{"demo", "now"}, []string{"etcdlb demo: wrong number of arguments: got 1, want 0"}},
		{[]string{"weight", "echo", "10.0.0.1:80", "--", "-1"}, []string{`etcdlb weight: weight "-1" is not an integer in 0..1000000`}},
		// A negative number is an argument, not a flag: no flag is named with digits.
		{[]string{"weight", "echo", "10.0.0.1:80", "-1"}, []string{`etcdlb weight: weight "-1" is not an integer in 0..1000000`}},
		{[]string{"weight", "--prefix", "p/", "echo", "10.0.0.1:80", "-2.5"}, []string{`etcdlb weight: weight "-2.5" is not an integer in 0..1000000`}},
		{[]string{"weight", "echo", "-1", "10.0.0.1:80", "3"}, []string{"etcdlb weight: wrong number of arguments: got 4, want 3"}},
	} {
		expect(t, nil, exitUsage, tc.want, tc.args...)
	}
	expect(t, []string{"ETCDCTL_DIAL_TIMEOUT=soon"}, exitUsage, []string{`etcdlb ls: ETCDCTL_DIAL_TIMEOUT="soon": want a positive duration`}, "ls")
	expect(t, nil, exitUsage, []string{"etcdlb ls: --dial-timeout 0s: want a positive duration"}, "ls", "--dial-timeout=0")
}
