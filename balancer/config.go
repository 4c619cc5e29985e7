package balancer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/grpc/serviceconfig"

	"github.com/etcdlb/etcdlb/picker"
)

// Config is the JSON configuration of every etcdlb policy, given in the
// service config's loadBalancingConfig, e.g.
//
//	{"loadBalancingConfig":[{"etcdlb_weighted":{"localZone":"eu-1a"}}]}
//
// Unknown fields, and fields in the wrong case, are rejected, so that a
// misspelt field is an error rather than a silently ignored setting.
type Config struct {
	serviceconfig.LoadBalancingConfig `json:"-"`

	// LocalZone is the client's own zone. When set, only endpoints in it
	// are picked while at least LocalZoneMinReady of them are ready; with
	// fewer, picks spill to every zone. Empty: zones are ignored.
	LocalZone string `json:"localZone,omitempty"`

	// LocalZoneMinReady is how many ready, undrained endpoints the local
	// zone needs to keep its traffic to itself. Default 1; a value below 1
	// is rejected.
	LocalZoneMinReady int `json:"localZoneMinReady,omitempty"`

	// ChoiceCount is how many endpoints etcdlb_least_inflight samples per
	// pick. Default 2; values outside [2, 10] are rejected. Only
	// etcdlb_least_inflight accepts it.
	ChoiceCount int `json:"choiceCount,omitempty"`
}

const maxZoneLength = 256

// configFields are the JSON names of Config's fields.
var configFields = []string{"localZone", "localZoneMinReady", "choiceCount"}

func defaultConfig(p *policy) *Config {
	c := &Config{LocalZoneMinReady: 1}
	if p.leastInflight {
		c.ChoiceCount = picker.DefaultChoiceCount
	}
	return c
}

// parseConfig fills the defaults, then unmarshals js over them, then
// validates. Every error names the policy and the field.
func parseConfig(p *policy, js json.RawMessage) (*Config, error) {
	c := defaultConfig(p)
	if len(bytes.TrimSpace(js)) == 0 {
		return c, nil
	}
	// Field names are checked exactly: encoding/json matches them without
	// regard to case, which would let "localzone" through.
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(js, &fields); err != nil {
		return nil, fmt.Errorf("%s: config %s: %w", p.name, js, err)
	}
	for name := range fields {
		if !slices.Contains(configFields, name) {
			return nil, fmt.Errorf("%s: config field %q: unknown; the fields are %s", p.name, name, strings.Join(configFields, ", "))
		}
	}
	if err := json.Unmarshal(js, c); err != nil {
		return nil, fmt.Errorf("%s: config %s: %w", p.name, js, err)
	}
	switch {
	case len(c.LocalZone) > maxZoneLength:
		return nil, fmt.Errorf("%s: config field localZone: longer than %d bytes", p.name, maxZoneLength)
	case c.LocalZoneMinReady < 1:
		return nil, fmt.Errorf("%s: config field localZoneMinReady: %d, must be at least 1", p.name, c.LocalZoneMinReady)
	case !p.leastInflight && c.ChoiceCount != 0:
		return nil, fmt.Errorf("%s: config field choiceCount: only %s takes it", p.name, LeastInflightName)
	case p.leastInflight && (c.ChoiceCount < picker.MinChoiceCount || c.ChoiceCount > picker.MaxChoiceCount):
		return nil, fmt.Errorf("%s: config field choiceCount: %d, must be from %d to %d",
			p.name, c.ChoiceCount, picker.MinChoiceCount, picker.MaxChoiceCount)
	}
	return c, nil
}
