package lt

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/etcdlb/etcdlb/bench/load"
	"github.com/etcdlb/etcdlb/internal/embedetcd"
)

func TestX(t *testing.T) {
	c := embedetcd.StartT(t, embedetcd.Options{})
	cli := c.ClientT(t)
	for _, sc := range load.Scenarios() {
		if os.Getenv("SC") != "" && os.Getenv("SC") != sc.ID {
			continue
		}
		for _, p := range load.Policies {
			if os.Getenv("P") != "" && os.Getenv("P") != p.Name {
				continue
			}
			r, err := load.Run(context.Background(), sc, p, load.Options{Etcd: cli, Scale: 0.5})
			if err != nil {
				t.Fatal(err)
			}
			h := &r.Stats.Hist
			fmt.Printf("%s %-28s rps %7.0f p50 %v p90 %v p99 %v p999 %v err %d shares %.3f %v events %v\n", sc.ID, p.Name, r.RPS(), h.Quantile(.5), h.Quantile(.9), h.Quantile(.99), h.Quantile(.999), r.Stats.Errors.Load(), r.Shares(), r.Metrics, r.EventAt)
			if os.Getenv("TL") != "" {
				for w := 0; w < r.Timeline.Windows(); w += 5 {
					var row []int64
					for b := 0; b < r.Timeline.Rows(); b++ {
						row = append(row, r.Timeline.Sum(b, w, w+5))
					}
					fmt.Println(w*10, row, r.Errors.Sum(0, w, w+5))
					if w*10 > int(sc.Duration.Milliseconds()/2)+200 {
						break
					}
				}
			}
		}
	}
}
