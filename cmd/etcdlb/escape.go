package main

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// esc returns s with what a terminal would act on written as Go escapes:
// control characters (ESC, BEL, CR, ...; C0, DEL and C1), bidirectional
// formatting characters and invalid UTF-8. Every string from etcd (keys,
// addresses, zones, metadata, errors quoting them) goes through it before it
// is printed: whoever can write a service's keys must not be able to
// retitle, clear or rewrite the operator's terminal.
func esc(s string) string {
	if !strings.ContainsFunc(s, unsafeRune) && utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for i, r := range s {
		switch {
		case r == utf8.RuneError && !strings.HasPrefix(s[i:], "\uFFFD"):
			b.WriteString(`\x` + strconv.FormatUint(uint64(s[i]), 16))
		case unsafeRune(r):
			q := strconv.QuoteRuneToASCII(r)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func unsafeRune(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r)
}
