package metrics_test

import (
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/etcdlb/etcdlb/metrics"
)

// Serve the metrics on /metrics with promhttp. Pass m to the resolver with
// resolver.WithMetrics(m) (or static.Resolver.WithMetrics), and the
// resolver, the registrations and the policies of every ClientConn it serves
// report to it.
func ExampleNew() {
	reg := prometheus.NewRegistry() // or prometheus.DefaultRegisterer
	m, err := metrics.New(reg)
	if err != nil {
		log.Fatal(err)
	}
	_ = m // resolver.NewBuilder(cli, resolver.WithMetrics(m)), resolver.Register(..., resolver.WithMetrics(m))

	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := httptest.NewServer(mux) // http.ListenAndServe(":9090", mux) in a real server
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	// Series appear once something reports; an idle process serves none.
	fmt.Println(resp.StatusCode, strings.Contains(string(body), "etcdlb_"))
	// Output: 200 false
}
