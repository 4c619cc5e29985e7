package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/etcdlb/etcdlb/internal/embedetcd"
	"github.com/etcdlb/etcdlb/internal/poll"
)

// openPTY returns a new pseudo-terminal's master and its terminal.
func openPTY(t *testing.T) (master, tty *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { master.Close() })
	var unlock int32
	var n uint32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, master.Fd(), syscall.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); e != 0 {
		t.Fatal(e)
	}
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, master.Fd(), syscall.TIOCGPTN, uintptr(unsafe.Pointer(&n))); e != 0 {
		t.Fatal(e)
	}
	tty, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tty.Close() })
	return master, tty
}

// TestPasswordPrompt: --user (or ETCDCTL_USER) without a password asks for
// it on the terminal without echo, as etcdctl does, and says so clearly
// when stdin is not a terminal.
func TestPasswordPrompt(t *testing.T) {
	c := embedetcd.StartT(t, embedetcd.Options{Auth: true})
	ep := "--endpoints=" + c.Endpoints()[0]
	if _, err := c.ClientT(t).Put(t.Context(), "echo/127.0.0.1:1001", `{"addr":"127.0.0.1:1001"}`); err != nil {
		t.Fatal(err)
	}
	want := `--user "root" has no password, and stdin is not a terminal to ask for it on: give --password, --user root:PASSWORD or ETCDCTL_PASSWORD`
	expect(t, nil, 1, []string{"etcdlb ls: " + want}, "ls", "echo", ep, "--user=root")
	expect(t, []string{"ETCDCTL_USER=root"}, 1, []string{"etcdlb ls: " + want}, "ls", "echo", ep)

	for _, tc := range []struct {
		env  []string
		args []string
	}{
		{nil, []string{"ls", "echo", ep, "--user", "root"}},
		{[]string{"ETCDCTL_USER=root"}, []string{"ls", "echo", ep}},
	} {
		master, tty := openPTY(t)
		cmd := exec.Command(binary(t), tc.args...)
		cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, tc.env...)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		var out bytes.Buffer
		go func() {
			b := make([]byte, 4096)
			for {
				n, err := master.Read(b)
				mu.Lock()
				out.Write(b[:n])
				mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
		seen := func(s string) bool {
			mu.Lock()
			defer mu.Unlock()
			return strings.Contains(out.String(), s)
		}
		if !poll.Until(20*time.Second, func() bool { return seen("Password: ") }) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("%v etcdlb %v: no password prompt; output %q", tc.env, tc.args, out.String())
		}
		master.Write([]byte(embedetcd.RootPassword + "\n"))
		err := cmd.Wait()
		if !poll.Until(5*time.Second, func() bool { return seen("127.0.0.1:1001") }) || err != nil {
			t.Errorf("%v etcdlb %v after the password: %v, output %q", tc.env, tc.args, err, out.String())
		}
		if seen(embedetcd.RootPassword) {
			t.Errorf("the password was echoed: %q", out.String())
		}
	}
}
