//go:build !unix

package embedetcd

// reservePort does nothing where unix sockets are not at hand.
func reservePort(int) func() { return func() {} }
