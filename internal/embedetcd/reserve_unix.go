//go:build unix

package embedetcd

import "syscall"

// reservePort binds a socket to 127.0.0.1:port without listening on it, so
// that connecting is refused as before, but the OS hands the port to no one
// asking for any free port (it picks ports nothing is bound to). Without it
// another test process can take a stopped member's port, and the clients of
// this cluster talk to a foreign etcd until the member is back.
// SO_REUSEADDR lets it bind over the member's TIME_WAIT connections and the
// member bind again after release. It returns a release function.
func reservePort(port int) func() {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		return func() {}
	}
	_ = syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		syscall.Close(fd)
		return func() {}
	}
	return func() { syscall.Close(fd) }
}
