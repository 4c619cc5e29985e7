// Command etcdlb runs a self-contained demo of etcdlb and lets an operator
// inspect and tune the services registered in etcd.
//
//	etcdlb demo                       embedded etcd, six backends, three policies, a narrated scenario
//	etcdlb ls [SERVICE]               services and their endpoints
//	etcdlb weight SERVICE ADDR N      set the operator's weight override
//	etcdlb drain SERVICE ADDR         override the weight to 0
//	etcdlb undrain SERVICE ADDR       clear the override
//	etcdlb override clear SERVICE ADDR
//	etcdlb watch SERVICE              stream changes as the resolver sees them
//
// The operator subcommands take etcdctl's connection flags and ETCDCTL_*
// environment variables; flags may come before or after the arguments.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1 // the command failed: etcd unreachable, unknown endpoint, failed check
	exitUsage = 2 // bad flags or arguments
)

type command struct {
	name  string
	usage string // first line: the synopsis; the rest: what it does
	run   func(c *command, e *env, args []string) int
}

// env is what a command reads and writes; tests substitute nothing, they
// run the binary.
type env struct {
	stdout, stderr io.Writer
	getenv         func(string) string
}

var commands = []*command{demoCmd, lsCmd, weightCmd, drainCmd, undrainCmd, overrideCmd, watchCmd}

func main() {
	os.Exit(run(&env{stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}, os.Args[1:]))
}

func run(e *env, args []string) int {
	if len(args) == 0 {
		usage(e.stderr)
		return exitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		if len(args) > 1 {
			if c := lookup(args[1]); c != nil {
				fmt.Fprint(e.stdout, c.usage)
				return exitOK
			}
		}
		usage(e.stdout)
		return exitOK
	}
	c := lookup(args[0])
	if c == nil {
		fmt.Fprintf(e.stderr, "etcdlb: unknown command %q\n\n", args[0])
		usage(e.stderr)
		return exitUsage
	}
	return c.run(c, e, args[1:])
}

func lookup(name string) *command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

func usage(w io.Writer) {
	fmt.Fprint(w, `etcdlb: client-side load balancing for gRPC with etcd as the registry.

Usage:
  etcdlb demo [--short] [--forever] [--step D]
  etcdlb ls [SERVICE]
  etcdlb weight SERVICE ADDR N
  etcdlb drain SERVICE ADDR
  etcdlb undrain SERVICE ADDR
  etcdlb override clear SERVICE ADDR
  etcdlb watch SERVICE

Run "etcdlb COMMAND --help" for a command's flags and details.
`)
}

// parseInterleaved parses args with fs, allowing flags after positional
// arguments as etcdctl does; "--" ends the flags. It returns the positional
// arguments. On -h/--help it prints the command's usage to stdout and
// returns flag.ErrHelp.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		// fs.Parse stops at the first non-flag, or after "--".
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// newFlagSet returns a flag set that prints c's usage and its flags.
func newFlagSet(e *env, c *command) *flag.FlagSet {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), c.usage)
		fmt.Fprintln(fs.Output(), "\nFlags:")
		fs.PrintDefaults()
	}
	return fs
}

// parse parses args for c; done is true when the command should return code
// at once (help printed, or a usage error).
func parse(e *env, c *command, fs *flag.FlagSet, args []string) (pos []string, code int, done bool) {
	for _, a := range args {
		if a == "--" {
			break
		}
		if a == "-h" || a == "-help" || a == "--help" {
			fs.SetOutput(e.stdout)
			fs.Usage()
			return nil, exitOK, true
		}
	}
	pos, err := parseInterleaved(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return nil, exitOK, true
	}
	if err != nil {
		return nil, exitUsage, true
	}
	return pos, exitOK, false
}
