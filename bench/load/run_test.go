package load

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	etcdlb "github.com/etcdlb/etcdlb/balancer"
	"github.com/etcdlb/etcdlb/internal/embedetcd"
)

// One short run of every scenario with one of etcdlb's policies and one of
// grpc-go's, end to end: real backends, the etcd resolver for scenario 6,
// the events, the measurements and the reports. It checks what does not
// depend on the machine's speed.
func TestRunAllShort(t *testing.T) {
	if testing.Short() {
		t.Skip("real load for a few seconds")
	}
	etcd := embedetcd.StartT(t, embedetcd.Options{})
	// etcdlb_weighted, round_robin
	exact := slices.IndexFunc(Policies, func(p Policy) bool { return p.Weights == etcdlb.WeightsExact })
	ps := []Policy{Policies[exact], Policies[len(etcdlb.Names())]}
	weighted := Policies[exact].Name
	rs, err := RunAll(context.Background(), Scenarios(), ps, Options{Etcd: etcd.ClientT(t), Scale: 0.1, CallTimeout: 2 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 12 {
		t.Fatalf("%d results, want 12", len(rs))
	}
	for _, r := range rs {
		if r.Stats.OK.Load() == 0 {
			t.Errorf("%s/%s: no successful call", r.Scenario.ID, r.Policy.Name)
		}
	}
	// Weighted splits 1:1:2:4 by a fixed schedule.
	sh := rs.Find("3-weights", weighted).Shares()
	for i, want := range []float64{0.125, 0.125, 0.25, 0.5} {
		if d := sh[i] - want; d > 0.02 || d < -0.02 {
			t.Errorf("3-weights/%s: shares %v, want 1:1:2:4", weighted, sh)
			break
		}
	}
	// Scenario 6 went through etcd: after the write, b0 (weight 5 of 8)
	// took more than its equal share of before.
	if r := rs.Find("6-etcd-weight", weighted); r.Shares()[0] < 0.3 {
		t.Errorf("6-etcd-weight/%s: shares %v, want b0 above 30%%", weighted, r.Shares())
	}
	var md, svg bytes.Buffer
	WriteMarkdown(&md, rs, "load-")
	WriteSVG(&svg, rs, rs.Scenarios()[3])
	for _, want := range []string{"### 4-zones", "| `round_robin` |", "### Goals", "load-4-zones.svg"} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("markdown lacks %q", want)
		}
	}
	if s := svg.String(); !strings.HasPrefix(s, "<svg") || !strings.HasSuffix(s, "</svg>\n") || !strings.Contains(s, weighted) {
		t.Errorf("SVG is not a whole drawing of the runs")
	}
}
