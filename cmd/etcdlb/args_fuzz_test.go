package main

import (
	"bytes"
	"flag"
	"slices"
	"strings"
	"testing"
)

// parseLine runs parseArgs with no environment, capturing its output.
func parseLine(args []string) (c *command, a *invocation, code int, done bool, stdout, stderr string) {
	var out, errOut bytes.Buffer
	e := &env{stdout: &out, stderr: &errOut, getenv: func(string) string { return "" }}
	c, a, code, done = parseArgs(e, args)
	return c, a, code, done, out.String(), errOut.String()
}

// sameInvocation reports whether a and b parsed to the same command line.
func sameInvocation(a, b *invocation) bool {
	return slices.Equal(a.pos, b.pos) && a.conn == b.conn && a.force == b.force &&
		a.weight == b.weight && a.demo == b.demo && a.short == b.short
}

// setFlags returns the flags a command line set, as --name=value.
func setFlags(fs *flag.FlagSet) []string {
	var out []string
	fs.Visit(func(f *flag.Flag) { out = append(out, "--"+f.Name+"="+f.Value.String()) })
	return out
}

func TestParseArgs(t *testing.T) {
	for _, tt := range []struct {
		args    []string
		pos     []string
		prefix  string
		code    int
		wantErr string
	}{
		{args: []string{"ls", "--prefix", "p/", "echo"}, pos: []string{"echo"}, prefix: "p/"},
		{args: []string{"ls", "echo", "--prefix=p/"}, pos: []string{"echo"}, prefix: "p/"},
		{args: []string{"ls", "--", "-echo"}, pos: []string{"-echo"}},
		// A "--" that is a flag's value does not end the flags.
		{args: []string{"ls", "--prefix", "--", "echo", "--dial-timeout=1s"}, pos: []string{"echo"}, prefix: "--"},
		{args: []string{"ls", "--endpoints", "--prefix", "--", "--x"}, pos: []string{"--x"}},
		{args: []string{"weight", "echo", "a:1", "--", "-1"}, code: exitUsage, wantErr: `etcdlb weight: weight "-1" is not an integer in 0..1000000`},
		{args: []string{"weight", "echo", "a:1"}, code: exitUsage, wantErr: "etcdlb weight: wrong number of arguments: got 2, want 3"},
		{args: []string{"ls", "a", "b"}, code: exitUsage, wantErr: "got 2, want 0 or 1"},
		{args: []string{"demo", "x"}, code: exitUsage, wantErr: "etcdlb demo: wrong number of arguments: got 1, want 0"},
		{args: []string{"ls", "--dial-timeout=soon"}, code: exitUsage, wantErr: `invalid value "soon" for flag -dial-timeout`},
		{args: []string{"ls", "--nosuch"}, code: exitUsage, wantErr: "flag provided but not defined: -nosuch"},
		{args: []string{"override", "set", "echo", "a:1"}, code: exitUsage, wantErr: `unknown subcommand "set"`},
	} {
		_, a, code, done, _, stderr := parseLine(tt.args)
		if tt.wantErr != "" {
			if !done || code != tt.code || !strings.Contains(stderr, tt.wantErr) {
				t.Errorf("%q: done %v, code %d, stderr %q; want code %d and %q", tt.args, done, code, stderr, tt.code, tt.wantErr)
			}
			continue
		}
		if done || !slices.Equal(a.pos, tt.pos) || a.conn.prefix != tt.prefix {
			t.Errorf("%q: done %v, code %d, stderr %q, parsed %+v; want arguments %q, prefix %q", tt.args, done, code, stderr, a, tt.pos, tt.prefix)
		}
	}
}

// FuzzParseArgs checks the command line parser: it never panics or exits;
// a usage error says what is wrong on stderr; help goes to stdout; a
// command line it accepts has an allowed number of arguments, and parses the
// same with its flags written out in front of a "--", or after the
// arguments.
func FuzzParseArgs(f *testing.F) {
	for _, line := range []string{
		"", "help", "help\x00weight", "--help", "frobnicate", "ls", "ls\x00echo", "ls\x00--help",
		"ls\x00echo\x00--endpoints=127.0.0.1:1\x00--prefix\x00p/", "ls\x00--prefix\x00--\x00echo",
		"weight\x00echo\x0010.0.0.1:80\x005", "weight\x00echo\x00a:1\x00--\x00-1\x00--force",
		"weight\x00--force=false\x00echo\x00a:1\x001000001", "drain\x00echo\x00a:1\x00--force",
		"undrain\x00echo\x00a:1\x00--user\x00u:p\x00--password=x", "override\x00clear\x00echo\x00a:1",
		"override\x00set\x00echo\x00a:1", "watch\x00echo\x00--dial-timeout\x001s", "watch\x00--dial-timeout=x",
		"demo\x00--short\x00--step=1ms", "demo\x00--forever=maybe", "demo\x00--metrics-addr", "ls\x00-\x00--",
		"ls\x00---x", "ls\x00--cacert\x00", "ls\x00-h", "ls\x00--prefix\x00--\x00-h",
	} {
		f.Add(line)
	}
	f.Fuzz(func(t *testing.T, line string) {
		var args []string
		if line != "" {
			args = strings.Split(line, "\x00")
		}
		c, a, code, done, stdout, stderr := parseLine(args)
		if done {
			switch code {
			case exitOK:
				if !strings.Contains(stdout, "Usage:") || stderr != "" {
					t.Fatalf("%q: exit 0 without running, stdout %q, stderr %q; want the usage on stdout", args, stdout, stderr)
				}
			case exitUsage:
				if stdout != "" || !strings.HasPrefix(stderr, "etcdlb") {
					t.Fatalf("%q: usage error, stdout %q, stderr %q; want a message on stderr", args, stdout, stderr)
				}
				if !strings.Contains(stderr, "Usage:") {
					t.Fatalf("%q: usage error %q does not show the usage", args, stderr)
				}
			default:
				t.Fatalf("%q: exit %d while parsing", args, code)
			}
			return
		}
		if stdout != "" || stderr != "" {
			t.Fatalf("%q: accepted, but printed %q / %q", args, stdout, stderr)
		}
		if len(a.pos) < c.minArgs || len(a.pos) > c.maxArgs {
			t.Fatalf("%q: accepted %d arguments %q for %s", args, len(a.pos), a.pos, c.name)
		}
		flags := setFlags(a.fs)
		again := [][]string{append(append(append([]string{c.name}, flags...), "--"), a.pos...)}
		if !slices.ContainsFunc(a.pos, func(p string) bool { return strings.HasPrefix(p, "-") }) {
			again = append(again, append(append([]string{c.name}, a.pos...), flags...))
		}
		for _, args2 := range again {
			_, a2, code2, done2, _, stderr2 := parseLine(args2)
			if done2 || !sameInvocation(a, a2) {
				t.Fatalf("%q parsed to %q %+v; %q to exit %d (%q), %q %+v", args, a.pos, a.conn, args2, code2, stderr2, a2.pos, a2.conn)
			}
		}
	})
}
