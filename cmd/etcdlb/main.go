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
	"strconv"
	"strings"
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
	// minArgs and maxArgs bound the number of positional arguments.
	minArgs, maxArgs int
	// conn: the command takes the etcd connection flags.
	conn bool
	// flags, if set, registers the command's own flags, stored in a.
	flags func(fs *flag.FlagSet, a *invocation)
	// check, if set, validates the positional arguments; its error is a
	// usage error.
	check func(a *invocation) error
	run   func(c *command, e *env, a *invocation) int
}

// invocation is a parsed command line: what parseArgs hands to run.
type invocation struct {
	pos    []string
	conn   connFlags
	force  bool       // weight, drain
	weight uint32     // weight: its N
	demo   demoConfig // demo
	short  bool       // demo

	fs *flag.FlagSet // the flags as parsed, for tests
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
	c, a, code, done := parseArgs(e, args)
	if done {
		return code
	}
	return c.run(c, e, a)
}

// parseArgs parses a command line (without the program name) and never
// exits: done is true when the command line was handled here, with exit
// code code (help printed, or a usage error printed to stderr).
func parseArgs(e *env, args []string) (c *command, a *invocation, code int, done bool) {
	if len(args) == 0 {
		usage(e.stderr)
		return nil, nil, exitUsage, true
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		if len(args) > 1 {
			if c := lookup(args[1]); c != nil {
				fmt.Fprint(e.stdout, c.usage)
				return nil, nil, exitOK, true
			}
		}
		usage(e.stdout)
		return nil, nil, exitOK, true
	}
	c = lookup(args[0])
	if c == nil {
		fmt.Fprintf(e.stderr, "etcdlb: unknown command %q\n\n", args[0])
		usage(e.stderr)
		return nil, nil, exitUsage, true
	}
	a = &invocation{fs: newFlagSet(e, c)}
	if c.conn {
		a.conn.register(e, a.fs)
	}
	if c.flags != nil {
		c.flags(a.fs, a)
	}
	a.pos, code, done = parse(e, c, a.fs, args[1:])
	if done {
		return nil, nil, code, true
	}
	if len(a.pos) < c.minArgs || len(a.pos) > c.maxArgs {
		return nil, nil, usageError(e, c, fmt.Errorf("wrong number of arguments: got %d, want %s", len(a.pos), argCount(c.minArgs, c.maxArgs))), true
	}
	if c.conn {
		if err := a.conn.check(a.fs); err != nil {
			return nil, nil, usageError(e, c, err), true
		}
	}
	if c.check != nil {
		if err := c.check(a); err != nil {
			return nil, nil, usageError(e, c, err), true
		}
	}
	return c, a, exitOK, false
}

// usageError prints err with c's synopsis and returns exitUsage.
func usageError(e *env, c *command, err error) int {
	fmt.Fprintf(e.stderr, "etcdlb %s: %v\n%s\nRun \"etcdlb %s --help\" for its flags and details.\n",
		c.name, err, strings.SplitN(c.usage, "\n", 2)[0], c.name)
	return exitUsage
}

func argCount(lo, hi int) string {
	switch {
	case lo == hi:
		return fmt.Sprint(lo)
	case lo == 0 && hi == 1:
		return "0 or 1"
	}
	return fmt.Sprintf("%d to %d", lo, hi)
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
			// A negative number ("weight echo ADDR -1") is an argument, for
			// the command to say what it may be: no flag is named with digits.
			rest := fs.Args()
			if bad := len(args) - len(rest) - 1; bad >= 0 && isNegativeNumber(args[bad]) {
				pos = append(pos, args[bad])
				args = rest
				continue
			}
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		// fs.Parse stops at the first non-flag, or after "--".
		if endedFlags(fs, args[:len(args)-len(rest)]) {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

func isNegativeNumber(s string) bool {
	_, err := strconv.ParseFloat(s, 64)
	return err == nil && strings.HasPrefix(s, "-")
}

// endedFlags reports whether fs.Parse, having consumed the arguments
// consumed, stopped at a "--" that ends the flags, rather than one that is a
// flag's value (as in "--prefix --").
func endedFlags(fs *flag.FlagSet, consumed []string) bool {
	for i := 0; i < len(consumed); i++ {
		if consumed[i] == "--" {
			return i == len(consumed)-1
		}
		if takesValue(fs, consumed[i]) {
			i++
		}
	}
	return false
}

// takesValue reports whether arg is a flag of fs, without "=", that takes
// the next argument as its value.
func takesValue(fs *flag.FlagSet, arg string) bool {
	name, ok := strings.CutPrefix(arg, "-")
	if !ok || strings.Contains(name, "=") {
		return false
	}
	f := fs.Lookup(strings.TrimPrefix(name, "-"))
	if f == nil {
		return false
	}
	b, isBool := f.Value.(interface{ IsBoolFlag() bool })
	return !isBool || !b.IsBoolFlag()
}

// newFlagSet returns a flag set that prints c's usage and its flags.
func newFlagSet(e *env, c *command) *flag.FlagSet {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // parse prints the errors, shorter
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), c.usage)
		fmt.Fprintln(fs.Output(), "\nFlags:")
		fs.PrintDefaults()
	}
	return fs
}

// help prints fs's usage to stdout.
func help(e *env, fs *flag.FlagSet) int {
	fs.SetOutput(e.stdout)
	fs.Usage()
	return exitOK
}

// parse parses args for c; done is true when the command should return code
// at once (help printed, or a usage error).
func parse(e *env, c *command, fs *flag.FlagSet, args []string) (pos []string, code int, done bool) {
	for _, a := range args {
		if a == "--" {
			break
		}
		if a == "-h" || a == "-help" || a == "--help" {
			return nil, help(e, fs), true
		}
	}
	pos, err := parseInterleaved(fs, args)
	if errors.Is(err, flag.ErrHelp) { // -h after a "--" that was a flag's value
		return nil, help(e, fs), true
	}
	if err != nil {
		return nil, usageError(e, c, err), true
	}
	return pos, exitOK, false
}
