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
// The fields that one policy alone takes (LeastInflightParams) are read
// from the same object; Params returns them. Unknown fields, fields in the
// wrong case and another policy's fields are rejected, so that a misspelt
// field is an error rather than a silently ignored setting.
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

	// params are the fields that this config's policy alone takes (see
	// Params), in the same JSON object; nil when it takes none.
	params Params
}

// Params returns the config fields that the policy alone takes, a value of
// its own type (LeastInflightParams); nil when it takes none.
func (c *Config) Params() Params { return c.params }

// MarshalJSON writes Config's fields and its policy's params in one object,
// as parseConfig reads them.
func (c Config) MarshalJSON() ([]byte, error) {
	type fields Config // without this method
	b, err := json.Marshal(fields(c))
	if err != nil || c.params == nil {
		return b, err
	}
	pb, err := json.Marshal(c.params)
	if err != nil || string(pb) == "{}" {
		return b, err
	}
	if string(b) == "{}" {
		return pb, nil
	}
	return append(append(b[:len(b)-1], ','), pb[1:]...), nil
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

// configFields are the JSON names of Config's fields, read from its tags.
var configFields = jsonFields(reflect.TypeFor[Config]())

// jsonFields returns the JSON names of t's fields, in their order.
func jsonFields(t reflect.Type) []string {
	var names []string
	for f := range t.Fields() {
		if name := jsonName(f); name != "" {
			names = append(names, name)
		}
	}
	return names
}

// jsonName is the JSON name of f, "" when encoding/json skips it.
func jsonName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	if !f.IsExported() || name == "-" {
		return ""
	}
	return name
}

// paramFields returns the JSON names of p's params, none when it takes none.
func (p *policy) paramFields() []string {
	if p.params == nil {
		return nil
	}
	return jsonFields(reflect.TypeOf(p.params))
}

func defaultConfig(p *policy) *Config {
	return &Config{LocalZoneMinReady: 1, LocalZoneWait: defaultLocalZoneWait, params: p.params}
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
	own := append(slices.Clip(configFields), p.paramFields()...)
	for name := range fields {
		if !slices.Contains(own, name) && takers(name) == nil {
			return nil, fmt.Errorf("%s: config field %q: unknown; the fields are %s", p.name, name, strings.Join(own, ", "))
		}
	}
	if err := decodeConfig(p, c, js, fields); err != nil {
		return nil, fmt.Errorf("%s: config %s: %w", p.name, js, err)
	}
	if err := checkCommon(c); err != nil {
		return nil, fmt.Errorf("%s: %w", p.name, err)
	}
	if err := checkParams(p, c, js, fields); err != nil {
		return nil, fmt.Errorf("%s: %w", p.name, err)
	}
	return c, nil
}

// decodeConfig unmarshals js over c and over c's params.
func decodeConfig(p *policy, c *Config, js []byte, fields map[string]json.RawMessage) error {
	if err := decode(js, fields, c); err != nil {
		return err
	}
	if c.params == nil {
		return nil
	}
	v := reflect.New(reflect.TypeOf(c.params))
	v.Elem().Set(reflect.ValueOf(c.params))
	if err := decode(js, fields, v.Interface()); err != nil {
		return err
	}
	c.params = v.Elem().Interface().(Params)
	return nil
}

// decode unmarshals js over dst, a pointer to a struct, and names the field
// of fields whose value an error is about: the errors of a field's own
// UnmarshalJSON do not.
func decode(js []byte, fields map[string]json.RawMessage, dst any) error {
	err := json.Unmarshal(js, dst)
	if err == nil {
		return nil
	}
	t := reflect.TypeOf(dst).Elem()
	for name, v := range fields {
		if json.Unmarshal(fmt.Appendf(nil, "{%q:%s}", name, v), reflect.New(t).Interface()) != nil {
			return fmt.Errorf("config field %s: %w", name, err)
		}
	}
	return err
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
// when set to other than their zero value, and checks p's own.
func checkParams(p *policy, c *Config, js []byte, fields map[string]json.RawMessage) error {
	for _, other := range policies {
		if other.params == nil || p.params != nil && reflect.TypeOf(other.params) == reflect.TypeOf(p.params) {
			continue
		}
		t := reflect.TypeOf(other.params)
		v := reflect.New(t)
		if err := decode(js, fields, v.Interface()); err != nil {
			return fmt.Errorf("config %s: %w", js, err)
		}
		for f := range t.Fields() {
			name := jsonName(f)
			if _, set := fields[name]; set && !slices.Contains(p.paramFields(), name) && !v.Elem().FieldByIndex(f.Index).IsZero() {
				return fmt.Errorf("config field %s: only %s takes it", name, strings.Join(takers(name), ", "))
			}
		}
	}
	if c.params == nil {
		return nil
	}
	var err error
	c.params, err = c.params.check()
	return err
}

// takers returns the names of the policies whose params have the field
// name.
func takers(name string) []string {
	var names []string
	for _, p := range policies {
		if slices.Contains(p.paramFields(), name) {
			names = append(names, p.name)
		}
	}
	return names
}
