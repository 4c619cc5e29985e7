package picker

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSelect(t *testing.T) {
	type ep struct {
		Zone   string
		Weight uint32
	}
	tests := []struct {
		name      string
		ready     []ep
		localZone string
		minLocal  int
		// firstConnecting local endpoints are on their first connection.
		firstConnecting int
		want            []ep
		spilled         bool
		waiting         bool
		drained         bool
	}{
		{name: "no zone preference", ready: []ep{{"a", 1}, {"b", 2}}, want: []ep{{"a", 1}, {"b", 2}}},
		{name: "local zone only", ready: []ep{{"a", 1}, {"b", 2}, {"a", 3}}, localZone: "a", minLocal: 1,
			want: []ep{{"a", 1}, {"a", 3}}},
		{name: "local zone has none: spill", ready: []ep{{"b", 1}, {"c", 2}}, localZone: "a", minLocal: 1,
			want: []ep{{"b", 1}, {"c", 2}}, spilled: true},
		{name: "local zone below minimum: spill to all", ready: []ep{{"a", 1}, {"b", 2}}, localZone: "a", minLocal: 2,
			want: []ep{{"a", 1}, {"b", 2}}, spilled: true},
		{name: "drained left out", ready: []ep{{"a", 0}, {"a", 2}, {"b", 1}}, want: []ep{{"a", 2}, {"b", 1}}},
		{name: "drained local does not count toward minimum", ready: []ep{{"a", 0}, {"b", 1}}, localZone: "a", minLocal: 1,
			want: []ep{{"b", 1}}, spilled: true},
		{name: "all drained: picked evenly", ready: []ep{{"a", 0}, {"b", 0}}, localZone: "a", minLocal: 1,
			want: []ep{{"a", 1}, {"b", 1}}, drained: true},
		{name: "nothing ready", ready: nil, want: []ep{}},
		{name: "local zone connecting: wait", ready: []ep{{"b", 1}, {"c", 2}}, localZone: "a", minLocal: 1, firstConnecting: 1,
			want: []ep{}, waiting: true},
		{name: "local zone below minimum, rest connecting: its ready ones", ready: []ep{{"a", 1}, {"b", 2}}, localZone: "a",
			minLocal: 2, firstConnecting: 1, want: []ep{{"a", 1}}, waiting: true},
		{name: "too few connecting to reach the minimum: spill", ready: []ep{{"a", 1}, {"b", 2}}, localZone: "a",
			minLocal: 3, firstConnecting: 1, want: []ep{{"a", 1}, {"b", 2}}, spilled: true},
		{name: "enough ready: connecting ones do not matter", ready: []ep{{"a", 1}, {"b", 2}}, localZone: "a",
			minLocal: 1, firstConnecting: 2, want: []ep{{"a", 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ready []Endpoint
			for _, e := range tt.ready {
				ready = append(ready, Endpoint{Zone: e.Zone, Weight: e.Weight})
			}
			sel := Select(ready, tt.localZone, tt.minLocal, tt.firstConnecting)
			got := []ep{}
			for _, e := range sel.Endpoints {
				got = append(got, ep{e.Zone, e.Weight})
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("endpoints (-want +got):\n%s", diff)
			}
			if sel.Spilled != tt.spilled || sel.Waiting != tt.waiting || sel.AllDrained != tt.drained {
				t.Errorf("spilled, waiting, all drained = %v, %v, %v; want %v, %v, %v",
					sel.Spilled, sel.Waiting, sel.AllDrained, tt.spilled, tt.waiting, tt.drained)
			}
		})
	}
}
