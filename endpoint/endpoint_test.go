package endpoint_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/experimental/balancer/weight"
	"google.golang.org/grpc/resolver"

	"github.com/etcdlb/etcdlb/endpoint"
)

func TestGet(t *testing.T) {
	plain := resolver.Endpoint{Addresses: []resolver.Address{{Addr: "a:1"}}}
	tests := []struct {
		name string
		ep   resolver.Endpoint
		want endpoint.Attrs
	}{
		{"no attributes: default weight", plain, endpoint.Attrs{Weight: 1}},
		{"grpc weight only", weight.Set(plain, weight.EndpointInfo{Weight: 7}), endpoint.Attrs{Weight: 7}},
		{"grpc weight 0 means unset", weight.Set(plain, weight.EndpointInfo{Weight: 0}), endpoint.Attrs{Weight: 1}},
		{"ours: weight 0 drains", endpoint.Set(plain, endpoint.Attrs{Weight: 0, Zone: "z"}), endpoint.Attrs{Weight: 0, Zone: "z"}},
		{"ours: all attributes", endpoint.New("a:1", endpoint.Attrs{Weight: 3, Zone: "eu-1a", Metadata: map[string]string{"v": "2"}}),
			endpoint.Attrs{Weight: 3, Zone: "eu-1a", Metadata: map[string]string{"v": "2"}}},
		{"weight above the maximum is clamped", endpoint.New("a:1", endpoint.Attrs{Weight: endpoint.MaxWeight + 1}),
			endpoint.Attrs{Weight: endpoint.MaxWeight}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, endpoint.Get(tt.ep)); diff != "" {
				t.Errorf("Get (-want +got):\n%s", diff)
			}
		})
	}
}

// TestAttributesCompare checks that endpoints with equal attributes compare
// equal, and that metadata maps are compared by content without panicking.
func TestAttributesCompare(t *testing.T) {
	a := endpoint.New("a:1", endpoint.Attrs{Weight: 2, Zone: "z", Metadata: map[string]string{"k": "v"}})
	b := endpoint.New("a:1", endpoint.Attrs{Weight: 2, Zone: "z", Metadata: map[string]string{"k": "v"}})
	c := endpoint.New("a:1", endpoint.Attrs{Weight: 2, Zone: "z", Metadata: map[string]string{"k": "w"}})
	if !a.Attributes.Equal(b.Attributes) {
		t.Error("equal attributes compare unequal")
	}
	if a.Attributes.Equal(c.Attributes) {
		t.Error("different metadata compares equal")
	}
	if got := endpoint.Addr(a); got != "a:1" {
		t.Errorf("Addr = %q, want a:1", got)
	}
	if got := endpoint.Addr(resolver.Endpoint{}); got != "" {
		t.Errorf("Addr of no address = %q, want empty", got)
	}
}
