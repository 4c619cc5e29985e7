package main

import "testing"

func TestEsc(t *testing.T) {
	for in, want := range map[string]string{
		"echo/10.0.0.1:80":          "echo/10.0.0.1:80",
		"zürich":                    "zürich",
		"echo/x\x1b[2Jy":            `echo/x\x1b[2Jy`,
		"a\x1b]0;pwned\a\x1b[2J":    `a\x1b]0;pwned\a\x1b[2J`,
		"line\r\nnext\t":            `line\r\nnext\t`,
		"c1\u009b31m":               `c1\u009b31m`,
		"rtl\u202egnp.exe":          `rtl\u202egnp.exe`,
		"bad\xffutf8":               `bad\xffutf8`,
		"\uFFFD is a real rune too": "\uFFFD is a real rune too",
	} {
		if got := esc(in); got != want {
			t.Errorf("esc(%q) = %q, want %q", in, got, want)
		}
	}
}
