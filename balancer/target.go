package balancer

import (
	"fmt"
	"strings"

	"google.golang.org/grpc/resolver"
)

// unresolvedTargetHint says, when target was meant for etcdlb's resolver but
// reached another, why there are no endpoints and what to pass. grpc-go falls
// back to its default scheme for a scheme it has no resolver for: without
// grpc.WithResolvers, "etcd:///echo" becomes "dns:///etcd:///echo". Empty
// otherwise.
func unresolvedTargetHint(target resolver.Target) string {
	if target.URL.Scheme == "etcd" || !strings.HasPrefix(target.Endpoint(), "etcd:") {
		return ""
	}
	return fmt.Sprintf("; the target %q was not resolved by etcdlb's etcd resolver but by grpc's %q resolver: "+
		"pass grpc.WithResolvers(resolver.NewBuilder(cli)) (package github.com/etcdlb/etcdlb/resolver) to grpc.NewClient",
		target.String(), target.URL.Scheme)
}
