package picker

// Selection is the set of endpoints a picker picks from, chosen among the
// ready ones when the picker is built.
type Selection struct {
	Endpoints []Endpoint
	// Spilled is true when a local zone is set but has too few ready
	// endpoints, so picks go to every zone.
	Spilled bool
	// Waiting is true when the local zone has too few ready endpoints but
	// enough on their first connection: picks stay in the local zone, on
	// its ready endpoints, or wait when it has none (Endpoints is empty).
	Waiting bool
	// AllDrained is true when every ready endpoint has weight 0; they are
	// then picked all the same, with equal weights, rather than failing
	// every call.
	AllDrained bool
}

// Select chooses the endpoints to pick from among ready ones. Drained
// endpoints (weight 0) are left out while any other is ready. With a local
// zone, its endpoints alone are picked while at least minLocal of them are
// ready, or would be with the firstConnecting undrained local endpoints that
// are connecting for the first time and still worth waiting for; with fewer,
// picks spill to every zone at once, and come back when the local zone
// recovers. The result does not alias ready.
func Select(ready []Endpoint, localZone string, minLocal, firstConnecting int) Selection {
	var active, local []Endpoint
	for _, e := range ready {
		if e.Weight == 0 {
			continue
		}
		active = append(active, e)
		if localZone != "" && e.Zone == localZone {
			local = append(local, e)
		}
	}
	minLocal = max(minLocal, 1)
	switch {
	case len(active) == 0:
		all := make([]Endpoint, len(ready))
		for i, e := range ready {
			e.Weight = 1
			all[i] = e
		}
		return Selection{Endpoints: all, AllDrained: len(ready) > 0}
	case localZone == "":
		return Selection{Endpoints: active}
	case len(local) >= minLocal:
		return Selection{Endpoints: local}
	case len(local)+firstConnecting >= minLocal:
		return Selection{Endpoints: local, Waiting: true}
	default:
		return Selection{Endpoints: active, Spilled: true}
	}
}
