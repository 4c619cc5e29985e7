package main

import (
	"bufio"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"unsafe"
)

// readPassword prints prompt on the terminal and reads a line from it with
// echo off, as etcdctl does. stdin must be a terminal: a password is never
// read from a pipe or a file.
func readPassword(prompt string) (string, error) {
	if !isTTY(os.Stdin.Fd()) {
		return "", errNotTerminal
	}
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return "", fmt.Errorf("%w (%v)", errNotTerminal, err)
	}
	defer tty.Close()
	fd := tty.Fd()
	var old syscall.Termios
	if err := termios(fd, syscall.TCGETS, &old); err != nil {
		return "", fmt.Errorf("%w (%v)", errNotTerminal, err)
	}
	quiet := old
	quiet.Lflag &^= syscall.ECHO
	quiet.Lflag |= syscall.ICANON | syscall.ISIG
	quiet.Iflag |= syscall.ICRNL
	if err := termios(fd, syscall.TCSETS, &quiet); err != nil {
		return "", err
	}
	// Ctrl-C at the prompt must not leave the terminal without echo.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case s := <-sig:
			termios(fd, syscall.TCSETS, &old)
			fmt.Fprintln(tty)
			signal.Stop(sig)
			p, _ := os.FindProcess(os.Getpid())
			p.Signal(s)
		case <-done:
		}
	}()
	defer signal.Stop(sig)
	defer termios(fd, syscall.TCSETS, &old)
	fmt.Fprint(tty, prompt)
	line, err := bufio.NewReader(tty).ReadString('\n')
	fmt.Fprintln(tty)
	if err != nil && line == "" {
		return "", fmt.Errorf("reading the password: %w", err)
	}
	return strings.TrimRight(line, "\r\n"), nil
}

func isTTY(fd uintptr) bool {
	var t syscall.Termios
	return termios(fd, syscall.TCGETS, &t) == nil
}

func termios(fd uintptr, req uintptr, t *syscall.Termios) error {
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, fd, req, uintptr(unsafe.Pointer(t))); errno != 0 {
		return errno
	}
	return nil
}
