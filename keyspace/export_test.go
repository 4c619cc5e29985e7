package keyspace

import (
	"encoding/json"
	"errors"
)

// DecodeFastForTest is the fast decoder alone.
func DecodeFastForTest(b []byte) (Value, bool) { return decodeFast(b) }

// DecodeSlowForTest is the encoding/json decoder alone (no address checks).
func DecodeSlowForTest(b []byte) (Value, error) {
	var raw anyValue
	if err := json.Unmarshal(b, &raw); err != nil {
		return Value{}, err
	}
	var v Value
	if r, d := v.fill(&raw); r != "" {
		return Value{}, errors.New(d)
	}
	return v, nil
}
