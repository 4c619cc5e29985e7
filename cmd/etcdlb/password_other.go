//go:build !linux

package main

import "errors"

// readPassword cannot turn a terminal's echo off here without a dependency
// the module does not take: the password must come from the flags.
func readPassword(string) (string, error) {
	return "", errors.New("cannot prompt for a password on this system")
}
