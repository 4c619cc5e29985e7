package balancer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/serviceconfig"
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

	// LocalZoneWait bounds how long picks wait for local endpoints that are
	// connecting for the first time (since they appeared) before they
	// spill to other zones: a fresh client otherwise sends its first calls
	// to whichever zone connects first. While the local zone has too few
	// ready endpoints but enough on their first connection, picks go to
	// its ready ones, or wait when there are none. A local endpoint that
	// fails spills at once, and a client already spilling keeps spilling
	// until the local zone is ready. A duration string as in grpc's
	// service configs ("1s", "0.25s"; Go's "250ms" also); default "1s",
	// "0s" spills at once; more than 20s (grpc's minimum connect timeout)
	// or negative is rejected.
	LocalZoneWait Duration `json:"localZoneWait"`

	// ChoiceCount is how many endpoints etcdlb_least_inflight samples per
	// pick. Default 2; below 2 is rejected, above 10 counts as 10, as
	// grpc-go's least_request_experimental takes it (gRFC A48). Only
	// etcdlb_least_inflight accepts it.
	ChoiceCount int `json:"choiceCount,omitempty"`
}

const maxZoneLength = 256

// Bounds of LocalZoneWait.
const (
	defaultLocalZoneWait = Duration(time.Second)
	maxLocalZoneWait     = Duration(20 * time.Second)
)

// Duration is a time.Duration written in JSON as a string, "1s" or "0.5s".
type Duration time.Duration

// MarshalJSON writes d as time.Duration.String does, which UnmarshalJSON reads back.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads a duration string ("1s", "0.5s", "250ms"); null
// leaves d as it is.
func (d *Duration) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("%s is not a duration string such as \"1s\"", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration such as \"1s\" or \"0.5s\"", s)
	}
	*d = Duration(v)
	return nil
}

// configFields are the JSON names of Config's fields, read from its tags,
// and their indices in Config.
var configFields, configIndex = jsonFields(reflect.TypeFor[Config]())

// jsonFields returns the JSON names of t's fields, in their order, and
// their indices.
func jsonFields(t reflect.Type) (names []string, index map[string]int) {
	index = map[string]int{}
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if f.IsExported() && name != "-" && name != "" {
			names = append(names, name)
			index[name] = f.Index[0]
		}
	}
	return names, index
}

func defaultConfig(p *policy) *Config {
	c := &Config{LocalZoneMinReady: 1, LocalZoneWait: defaultLocalZoneWait}
	for _, pa := range p.params {
		pa.setDefault(c)
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
		return nil, fmt.Errorf("%s: config %s: %w", p.name, js, fieldError(fields, err))
	}
	if err := checkCommon(c); err != nil {
		return nil, fmt.Errorf("%s: %w", p.name, err)
	}
	if err := checkParams(p, c); err != nil {
		return nil, fmt.Errorf("%s: %w", p.name, err)
	}
	return c, nil
}

// checkCommon checks the fields every policy takes.
func checkCommon(c *Config) error {
	switch {
	case len(c.LocalZone) > maxZoneLength:
		return fmt.Errorf("config field localZone: longer than %d bytes", maxZoneLength)
	case c.LocalZoneWait < 0 || c.LocalZoneWait > maxLocalZoneWait:
		return fmt.Errorf("config field localZoneWait: %v, must be from 0s to %v",
			time.Duration(c.LocalZoneWait), time.Duration(maxLocalZoneWait))
	case c.LocalZoneMinReady < 1:
		return fmt.Errorf("config field localZoneMinReady: %d, must be at least 1", c.LocalZoneMinReady)
	}
	return nil
}

// checkParams rejects the fields that other policies take and p does not,
// and checks p's own.
func checkParams(p *policy, c *Config) error {
	for _, other := range policies {
		for _, pa := range other.params {
			if !p.takes(pa.field) && !configField(c, pa.field).IsZero() {
				return fmt.Errorf("config field %s: only %s takes it", pa.field, strings.Join(takers(pa.field), ", "))
			}
		}
	}
	for _, pa := range p.params {
		if err := pa.check(c); err != nil {
			return fmt.Errorf("config field %s: %w", pa.field, err)
		}
	}
	return nil
}

// takes reports whether p has the param field.
func (p *policy) takes(field string) bool {
	return slices.ContainsFunc(p.params, func(pa param) bool { return pa.field == field })
}

// takers returns the names of the policies that have the param field.
func takers(field string) []string {
	var names []string
	for _, p := range policies {
		if p.takes(field) {
			names = append(names, p.name)
		}
	}
	return names
}

// configField returns the field of c whose JSON name is name, which the
// table's params name and TestParamsAreConfigFields checks.
func configField(c *Config, name string) reflect.Value {
	return reflect.ValueOf(c).Elem().Field(configIndex[name])
}

// fieldError names the field of fields whose value err is about: the
// errors of a field's own UnmarshalJSON do not.
func fieldError(fields map[string]json.RawMessage, err error) error {
	for name, v := range fields {
		var c Config
		if json.Unmarshal([]byte(fmt.Sprintf("{%q:%s}", name, v)), &c) != nil {
			return fmt.Errorf("config field %s: %w", name, err)
		}
	}
	return err
}
