package keyspace_test

import (
	"errors"
	"testing"

	"github.com/etcdlb/etcdlb/endpoint"
	"github.com/etcdlb/etcdlb/keyspace"
)

// FuzzDecodeOverride checks the operator override format: no value panics;
// a rejected one is a *ValueError naming its key and a reason; an accepted
// weight is in range, and encodes and decodes to itself.
func FuzzDecodeOverride(f *testing.F) {
	for _, s := range []string{
		`{"weight":5}`, `{"weight":0}`, `{"weight":1000000}`, `{"weight":1000001}`, `{"weight":-1}`,
		`{"weight":1.5}`, `{"weight":1e2}`, `{"weight":"5"}`, `{"weight":null}`, `{}`, `5`, ``, `{`,
		`{"Weight":5}`, `{"weight":5,"weight":6}`, `{"weight":1e400}`, `{"weight":-0}`, `null`,
	} {
		f.Add([]byte(s))
	}
	const key = "_etcdlb/override/svc/10.0.0.1:80"
	f.Fuzz(func(t *testing.T, value []byte) {
		w, err := keyspace.DecodeOverride(key, value)
		if err != nil {
			var ve *keyspace.ValueError
			if !errors.As(err, &ve) || ve.Key != key || ve.Reason == "" || ve.Detail == "" {
				t.Fatalf("DecodeOverride(%q): error %#v, want a *ValueError with the key, a reason and a detail", value, err)
			}
			return
		}
		if w > endpoint.MaxWeight {
			t.Fatalf("DecodeOverride(%q) accepted weight %d", value, w)
		}
		b, err := keyspace.EncodeOverride(w)
		if err != nil {
			t.Fatalf("DecodeOverride(%q) = %d, which does not encode: %v", value, w, err)
		}
		if w2, err := keyspace.DecodeOverride(key, b); err != nil || w2 != w {
			t.Fatalf("DecodeOverride(%q) = %d; its encoding %s decodes to %d, %v", value, w, b, w2, err)
		}
	})
}
