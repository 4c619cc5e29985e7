package keyspace_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.etcd.io/etcd/client/v3/naming/endpoints"

	"github.com/etcdlb/etcdlb/endpoint"
	"github.com/etcdlb/etcdlb/keyspace"
)

func TestDecodeValueFormats(t *testing.T) {
	mgr, _ := json.Marshal(struct {
		Op       endpoints.Operation
		Addr     string
		Metadata any
	}{endpoints.Add, "10.0.0.1:80", map[string]string{"k": "v"}})
	for _, tc := range []struct {
		name, id, value string
		want            keyspace.Value
	}{
		{"ours", "10.0.0.1:80", `{"addr":"10.0.0.1:80","weight":10,"zone":"eu-1a","metadata":{"k":"v"}}`,
			keyspace.Value{Addr: "10.0.0.1:80", Weight: 10, Zone: "eu-1a", Metadata: map[string]string{"k": "v"}}},
		{"ours default weight", "10.0.0.1:80", `{"addr":"10.0.0.1:80"}`,
			keyspace.Value{Addr: "10.0.0.1:80", Weight: endpoint.DefaultWeight}},
		{"ours drained", "10.0.0.1:80", `{"addr":"10.0.0.1:80","weight":0}`,
			keyspace.Value{Addr: "10.0.0.1:80"}},
		{"ours max weight", "10.0.0.1:80", `{"addr":"10.0.0.1:80","weight":1000000}`,
			keyspace.Value{Addr: "10.0.0.1:80", Weight: endpoint.MaxWeight}},
		{"ours integral exponent", "10.0.0.1:80", `{"addr":"10.0.0.1:80","weight":1e2}`,
			keyspace.Value{Addr: "10.0.0.1:80", Weight: 100}},
		{"manager", "10.0.0.1:80", string(mgr),
			keyspace.Value{Addr: "10.0.0.1:80", Weight: 1, Metadata: map[string]string{"k": "v"}}},
		{"manager free id and odd metadata", "instance-1", `{"Op":0,"Addr":"10.0.0.1:80","Metadata":[1,2]}`,
			keyspace.Value{Addr: "10.0.0.1:80", Weight: 1}},
		{"bare", "10.0.0.1:80", " 10.0.0.1:80\n", keyspace.Value{Addr: "10.0.0.1:80", Weight: 1}},
		{"bare hostname", "x", "backend-1.internal:8080", keyspace.Value{Addr: "backend-1.internal:8080", Weight: 1}},
		{"ipv6", "[::1]:80", `{"addr":"[::1]:80"}`, keyspace.Value{Addr: "[::1]:80", Weight: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := keyspace.DecodeValue("svc/"+tc.id, tc.id, []byte(tc.value))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("DecodeValue (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEncodeValueRoundTrip(t *testing.T) {
	for _, v := range []keyspace.Value{
		{Addr: "10.0.0.1:80", Weight: 0},
		{Addr: "10.0.0.1:80", Weight: 7, Zone: "z", Metadata: map[string]string{"a": "b"}},
	} {
		b, err := keyspace.EncodeValue(v)
		if err != nil {
			t.Fatal(err)
		}
		got, err := keyspace.DecodeValue("k", v.Addr, b)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(v, got); diff != "" {
			t.Errorf("round trip of %s (-want +got):\n%s", b, diff)
		}
	}
	for _, v := range []keyspace.Value{{Addr: ""}, {Addr: "x:1", Weight: endpoint.MaxWeight + 1}} {
		if _, err := keyspace.EncodeValue(v); err == nil {
			t.Errorf("EncodeValue(%+v) succeeded", v)
		}
	}
}

func TestDecodeOverride(t *testing.T) {
	for v, want := range map[string]int{`{"weight":5}`: 5, `{"weight":0}`: 0, `{"weight":-1}`: -1,
		`{"weight":1.5}`: -1, `{}`: -1, `5`: -1, `{"weight":"5"}`: -1, ``: -1} {
		w, err := keyspace.DecodeOverride("k", []byte(v))
		if (err != nil) != (want < 0) || err == nil && int(w) != want {
			t.Errorf("DecodeOverride(%q) = %d, %v; want %d", v, w, err, want)
		}
	}
}

// FuzzDecodeValue checks that no value panics, and that every accepted value
// is a valid endpoint that encodes and decodes to itself.
func FuzzDecodeValue(f *testing.F) {
	for _, s := range []string{
		`{"addr":"10.0.0.1:80","weight":10,"zone":"eu-1a","metadata":{"k":"v"}}`,
		`{"Op":0,"Addr":"10.0.0.1:80","Metadata":{"k":"v"}}`,
		`{"Op":1,"Addr":"10.0.0.1:80"}`,
		`10.0.0.1:80`, `[::1]:80`, ``, `{`, `{"addr":null}`, `{"weight":-0}`,
		`{"addr":"10.0.0.1:80","weight":1e400}`, `{"addr":"10.0.0.1:80","addr":"x"}`,
		`{"addr":"a:1","Addr":"b:1"}`, `{"addr":"10.0.0.1:80","metadata":null,"zone":null}`,
	} {
		f.Add("10.0.0.1:80", []byte(s))
	}
	f.Fuzz(func(t *testing.T, id string, value []byte) {
		v, err := keyspace.DecodeValue("svc/"+id, id, value)
		if err != nil {
			if _, ok := err.(*keyspace.ValueError); !ok {
				t.Fatalf("error %T, want *ValueError", err)
			}
			return
		}
		if v.Weight > endpoint.MaxWeight {
			t.Fatalf("accepted weight %d", v.Weight)
		}
		b, err := keyspace.EncodeValue(v)
		if err != nil {
			t.Fatalf("accepted %q but cannot encode %+v: %v", value, v, err)
		}
		v2, err := keyspace.DecodeValue("svc/"+v.Addr, v.Addr, b)
		if err != nil {
			t.Fatalf("re-decode %s: %v", b, err)
		}
		if diff := cmp.Diff(v, v2); diff != "" {
			t.Fatalf("round trip (-first +second):\n%s", diff)
		}
	})
}

// FuzzDecodeFast checks that the fast decoder, whenever it accepts a value,
// agrees with encoding/json.
func FuzzDecodeFast(f *testing.F) {
	for _, s := range []string{
		`{"addr":"10.0.0.1:80","weight":10,"zone":"eu-1a","metadata":{"k":"v"}}`,
		` { "addr" : "10.0.0.1:80" , "weight" : 0 } `, `{"addr":"a:1","metadata":{}}`,
		`{"addr":"a:1","weight":01}`, `{"addr":"a:1","weight":1000001}`, `{"addr":"a:1","weight":1.0}`,
		`{"addr":"a:1","addr":"b:2"}`, `{"addr":"a:1","metadata":{"k":"v","k":"w"}}`, `{"addr":"a\u0031:1"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, value []byte) {
		fast, ok := keyspace.DecodeFastForTest(value)
		if !ok {
			return
		}
		slow, err := keyspace.DecodeSlowForTest(value)
		if err != nil {
			t.Fatalf("fast accepted %q, encoding/json: %v", value, err)
		}
		if diff := cmp.Diff(slow, fast); diff != "" {
			t.Fatalf("%q (-encoding/json +fast):\n%s", value, diff)
		}
	})
}

// A zone or metadata with a terminal's escape is rejected with its own
// reason, on decode and on encode (Register).
func TestControlCharsRejected(t *testing.T) {
	for _, value := range []string{
		`{"addr":"10.0.0.1:80","zone":"a\u001b]0;pwned\u0007\u001b[2J"}`,
		`{"addr":"10.0.0.1:80","metadata":{"k":"\u001b[31mred"}}`,
		`{"addr":"10.0.0.1:80","metadata":{"k\u0085":"v"}}`,
		`{"Op":0,"Addr":"10.0.0.1:80","Metadata":{"k":"\u007f"}}`,
	} {
		_, err := keyspace.DecodeValue("svc/10.0.0.1:80", "10.0.0.1:80", []byte(value))
		ve, ok := err.(*keyspace.ValueError)
		if !ok || ve.Reason != keyspace.ReasonControlChar {
			t.Errorf("DecodeValue(%s) = %v, want reason %s", value, err, keyspace.ReasonControlChar)
		}
	}
	for _, v := range []keyspace.Value{
		{Addr: "10.0.0.1:80", Zone: "a\x1b[2J"},
		{Addr: "10.0.0.1:80", Metadata: map[string]string{"k": "\x1b[31mred"}},
	} {
		if _, err := keyspace.EncodeValue(v); err == nil {
			t.Errorf("EncodeValue(%+q) succeeded", v.Zone+fmt.Sprint(v.Metadata))
		}
	}
	// Printable non-ASCII is fine.
	if _, err := keyspace.DecodeValue("svc/x", "x", []byte(`{"addr":"10.0.0.1:80","zone":"zürich-1"}`)); err != nil {
		t.Error(err)
	}
}
