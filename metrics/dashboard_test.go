package metrics_test

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestDashboardNamesExist checks that every metric the dashboard queries is
// one this package defines, so that a renamed metric cannot leave a panel
// silently empty.
func TestDashboardNamesExist(t *testing.T) {
	raw, err := os.ReadFile("dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("dashboard.json: %v", err)
	}
	src, err := os.ReadFile("metrics.go")
	if err != nil {
		t.Fatal(err)
	}
	name := regexp.MustCompile(`etcdlb_[a-z_]+`)
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, target := range p.Targets {
			for _, n := range name.FindAllString(target.Expr, -1) {
				n = strings.TrimSuffix(n, "_bucket")
				if !strings.Contains(string(src), `"`+n+`"`) {
					t.Errorf("panel %q queries %s, which metrics.go does not define", p.Title, n)
				}
			}
		}
	}
}
