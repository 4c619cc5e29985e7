package examples

import (
	"bufio"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcdlb/etcdlb/internal/embedetcd"
)

// TestExamplesRun builds the examples and runs them against an embedded
// etcd: two servers register, the client's calls reach both, and on SIGINT
// a server deregisters and exits cleanly.
func TestExamplesRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the examples")
	}
	etcd := embedetcd.StartT(t, embedetcd.Options{})
	cli := etcd.ClientT(t)
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin+"/", "./server", "./client")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ep := etcd.Endpoint(0)
	s1, _ := start(t, filepath.Join(bin, "server"), "--etcd", ep, "--weight", "1", "--zone", "a")
	start(t, filepath.Join(bin, "server"), "--etcd", ep, "--weight", "3", "--zone", "a")
	_, clientOut := start(t, filepath.Join(bin, "client"), "--etcd", ep, "--zone", "a")
	waitLine(t, clientOut, func(l string) bool { return strings.Count(l, "127.0.0.1:") == 2 }, "calls reaching both servers")

	s1.Process.Signal(syscall.SIGINT)
	if err := s1.Wait(); err != nil {
		t.Fatalf("server after SIGINT: %v", err)
	}
	resp, err := cli.Get(t.Context(), "echo/", clientv3.WithPrefix())
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("keys under echo/ after one server stopped: %v, %v; want 1", resp, err)
	}
}

// start runs a command until the test ends; it returns the command and its
// stderr (where the examples log), line by line.
func start(t *testing.T, name string, args ...string) (*exec.Cmd, <-chan string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1000)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default: // nobody reads: drop
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Signal(os.Interrupt)
			done := make(chan struct{})
			go func() { cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				<-done
			}
		}
	})
	return cmd, lines
}

// waitLine waits, bounded, for a line that ok accepts.
func waitLine(t *testing.T, lines <-chan string, ok func(string) bool, what string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for {
		select {
		case l, open := <-lines:
			if !open {
				t.Fatalf("output ended before %s", what)
			}
			t.Log(l)
			if ok(l) {
				return
			}
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}
