package balancer_test

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/grpc/balancer"

	etcdlb "github.com/etcdlb/etcdlb/balancer"
)

// FuzzParseConfig checks each policy's ParseConfig: it never panics; a
// config it accepts marshals to JSON that parses to the same Config; a
// config it rejects gets an error that names the policy and, when the
// config is a JSON object, one of the object's fields.
func FuzzParseConfig(f *testing.F) {
	for _, s := range []string{
		``, `{}`, `null`, `[]`, `{}{}`, `"x"`, `{"localZone":"eu-1a"}`,
		`{"localZone":"a","localZoneMinReady":3}`, `{"choiceCount":10}`, `{"choiceCount":1}`,
		`{"localZoneMinReady":0}`, `{"localzone":"a"}`, `{"localZone":7}`, `{"localZone":null}`,
		`{"choiceCount":2.5}`, `{"choiceCount":1e1}`, `{"localZoneMinReady":9999999999999999999}`,
		`{"localZone":"a","localZone":"b"}`, `{"localZone":"\u00e9\ud800"}`, ` { "choiceCount" : 3 } `,
	} {
		for p := range allPolicies {
			f.Add(uint8(p), []byte(s))
		}
	}
	f.Fuzz(func(t *testing.T, which uint8, js []byte) {
		name := allPolicies[int(which)%len(allPolicies)]
		parser := balancer.Get(name).(balancer.ConfigParser)
		got, err := parser.ParseConfig(js)
		if err != nil {
			checkConfigError(t, name, js, err)
			return
		}
		c := *got.(*etcdlb.Config)
		if c.LocalZoneMinReady < 1 || len(c.LocalZone) > 256 {
			t.Fatalf("%s accepted %q as %+v", name, js, c)
		}
		takesChoiceCount := slices.Contains(etcdlb.ParamFields()[name], "choiceCount")
		var choiceCount int
		if p, ok := c.Params().(etcdlb.LeastInflightParams); ok {
			choiceCount = p.ChoiceCount
		}
		if lo, hi := 2, 10; takesChoiceCount && (choiceCount < lo || choiceCount > hi) ||
			!takesChoiceCount && choiceCount != 0 {
			t.Fatalf("%s accepted %q with choiceCount %d", name, js, choiceCount)
		}
		again, err := json.Marshal(c)
		if err != nil {
			t.Fatalf("%s accepted %q as %+v, which does not marshal: %v", name, js, c, err)
		}
		got2, err := parser.ParseConfig(again)
		if err != nil {
			t.Fatalf("%s accepted %q but rejects its re-marshalled %s: %v", name, js, again, err)
		}
		if c2 := *got2.(*etcdlb.Config); c2 != c {
			t.Fatalf("%s: %q parsed to %+v, its re-marshalled %s to %+v", name, js, c, again, c2)
		}
	})
}

// checkConfigError fails t unless err names the policy and, for a JSON
// object, one of the fields in it.
func checkConfigError(t *testing.T, name string, js []byte, err error) {
	t.Helper()
	msg := err.Error()
	if !strings.HasPrefix(msg, name+": config") {
		t.Fatalf("%s rejected %q with %q, which does not start with %q", name, js, msg, name+": config")
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal(js, &fields) != nil || fields == nil {
		return // not an object: there is no field to name
	}
	// The message may quote the config; the field must be named apart from it.
	rest := strings.Replace(msg, string(js), "", 1)
	for f := range fields {
		if f != "" && strings.Contains(rest, f) || strings.Contains(rest, strconv.Quote(f)) {
			return
		}
	}
	t.Fatalf("%s rejected the object %q with %q, which names none of its fields", name, js, msg)
}
