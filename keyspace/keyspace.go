// Package keyspace is the stored format: the keys and values etcdlb reads
// and writes in etcd. Package resolver reads it, package registry writes it.
// It is a compatibility contract between versions of etcdlb, etcd's own
// naming packages and operators' tools; change it only by adding.
//
// Endpoint key:  <prefix><service>/<id>
//
//	<id> is the endpoint's address for keys etcdlb writes; keys written by
//	etcd's naming/endpoints.Manager may use any id without a "/".
//
// Endpoint value, one of:
//
//	{"addr":"10.0.0.7:8080","weight":10,"zone":"eu-1a","metadata":{"k":"v"}}
//	    etcdlb's own. Only addr is required; a missing weight is
//	    endpoint.DefaultWeight, weight 0 drains the endpoint.
//	{"Op":0,"Addr":"10.0.0.7:8080","Metadata":...}
//	    what etcd's naming/endpoints.Manager writes. Metadata is kept when it
//	    is an object of strings and ignored otherwise; lower-case weight and
//	    zone fields are honoured if present.
//	10.0.0.7:8080
//	    a bare host:port, weight endpoint.DefaultWeight.
//
// Override key:  <prefix>_etcdlb/override/<service>/<id>
// Override value: {"weight":5}
//
//	An operator's weight for the endpoint <prefix><service>/<id>. It has no
//	lease, so it outlives the server's lease, re-registration and restart,
//	and it wins over the endpoint's own weight until it is deleted. It lives
//	outside <prefix><service>/ so that etcd's own resolver, which reads that
//	whole prefix, never mistakes it for an endpoint.
//
// Service index key:  <prefix>_etcdlb/services/<service>/<addr>
// Service index value: empty
//
//	Written by registry.Register in the same transaction as the endpoint key and on
//	its lease, deleted with it: a service is listed (etcdlb ls) while one of
//	its registrations is alive. One key per registration, not per service,
//	so that no registration's lease ending drops a service others still
//	serve. Endpoints registered by older versions of etcdlb or by other
//	tools have none: they are found by their service's name alone.
//
// A value is rejected, with a ValueError naming the reason, when it is larger
// than MaxValueSize, is malformed JSON, has a field of the wrong type, a
// weight that is negative, fractional or above endpoint.MaxWeight, an empty or
// unparsable address, an address that disagrees with an <id> that is itself
// an address, an Op other than 0 (Add), or a zone or metadata key or value
// with a control character (C0, DEL or C1, e.g. a terminal's escape).
package keyspace

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"strconv"
	"strings"
	"unicode"

	"github.com/etcdlb/etcdlb/endpoint"
)

// MaxValueSize is the largest endpoint or override value accepted, in bytes.
// Registrations are a few hundred bytes; anything near this is a mistake that
// would otherwise be copied into every client.
const MaxValueSize = 16 << 10

// ReservedName is the first path segment under the key prefix that etcdlb
// keeps for itself; it cannot be a service name.
const ReservedName = "_etcdlb"

// Reason says why a value was rejected. Its values are bounded, so they can
// label a metric.
type Reason string

// The reasons a value is rejected.
const (
	ReasonOversized    Reason = "oversized"
	ReasonMalformed    Reason = "malformed_json"
	ReasonWrongType    Reason = "wrong_type"
	ReasonBadWeight    Reason = "bad_weight"
	ReasonBadAddr      Reason = "bad_addr"
	ReasonAddrMismatch Reason = "addr_mismatch"
	ReasonBadOp        Reason = "bad_op"
	ReasonDuplicate    Reason = "duplicate_addr"
	// ReasonControlChar: a zone or metadata with a control character,
	// which would reach operators' terminals (ls, watch) as a command.
	ReasonControlChar Reason = "control_char"
)

// ValueError is a rejected key: which key, and why.
type ValueError struct {
	Key    string
	Reason Reason
	Detail string
}

func (e *ValueError) Error() string {
	return fmt.Sprintf("etcdlb: key %q rejected: %s: %s", e.Key, e.Reason, e.Detail)
}

// Value is one endpoint as stored in etcd.
type Value struct {
	Addr     string
	Weight   uint32
	Zone     string
	Metadata map[string]string
}

// Attrs returns v's attributes for endpoint.New.
func (v Value) Attrs() endpoint.Attrs {
	return endpoint.Attrs{Weight: v.Weight, Zone: v.Zone, Metadata: v.Metadata}
}

// storedValue is etcdlb's own JSON. Weight has no omitempty: 0 means drained.
type storedValue struct {
	Addr     string            `json:"addr"`
	Weight   uint32            `json:"weight"`
	Zone     string            `json:"zone,omitempty"`
	Metadata map[string]string `json:"metadata,omitempty"`
}

// anyValue accepts every JSON shape we read; fields stay raw so that a wrong
// type is reported by name rather than as a generic unmarshal error.
type anyValue struct {
	Addr        json.RawMessage `json:"addr"`
	Weight      json.RawMessage `json:"weight"`
	Zone        json.RawMessage `json:"zone"`
	Metadata    json.RawMessage `json:"metadata"`
	Op          json.RawMessage `json:"Op"`
	MgrAddr     json.RawMessage `json:"Addr"`
	MgrMetadata json.RawMessage `json:"Metadata"`
}

// ServicePrefix is the key prefix holding the endpoints of service.
func ServicePrefix(prefix, service string) string { return prefix + service + "/" }

// OverridePrefix is the key prefix holding the operator overrides of service.
func OverridePrefix(prefix, service string) string {
	return prefix + ReservedName + "/override/" + service + "/"
}

// EndpointKey is the key etcdlb registers addr of service under.
func EndpointKey(prefix, service, addr string) string { return ServicePrefix(prefix, service) + addr }

// IndexPrefix is the key prefix of the service index: one key per
// registration, <IndexPrefix><service>/<addr>, on the registration's lease,
// so that the services can be listed without reading keys outside etcdlb's.
func IndexPrefix(prefix string) string { return prefix + ReservedName + "/services/" }

// IndexKey is the service index's key of the registration of addr.
func IndexKey(prefix, service, addr string) string { return IndexPrefix(prefix) + service + "/" + addr }

// OverrideKey is the key of the operator override for the endpoint id of service.
func OverrideKey(prefix, service, id string) string { return OverridePrefix(prefix, service) + id }

// CheckService reports whether service can be used as a service name.
func CheckService(service string) error {
	switch {
	case service == "":
		return fmt.Errorf("etcdlb: empty service name")
	case service == ReservedName || strings.HasPrefix(service, ReservedName+"/"):
		return fmt.Errorf("etcdlb: service name %q is reserved", service)
	case strings.HasSuffix(service, "/"):
		return fmt.Errorf("etcdlb: service name %q ends with /", service)
	}
	return nil
}

// EncodeValue returns the stored form of v, after checking it would decode.
func EncodeValue(v Value) ([]byte, error) {
	if err := CheckAddr(v.Addr); err != nil {
		return nil, err
	}
	if v.Weight > endpoint.MaxWeight {
		return nil, fmt.Errorf("etcdlb: weight %d above %d", v.Weight, endpoint.MaxWeight)
	}
	if d := controlChars(v); d != "" {
		return nil, fmt.Errorf("etcdlb: %s", d)
	}
	b, err := json.Marshal(storedValue(v))
	if err == nil && len(b) > MaxValueSize {
		err = fmt.Errorf("etcdlb: value of %d bytes above %d", len(b), MaxValueSize)
	}
	return b, err
}

// DecodeValue decodes the value stored under key, whose last segment is id.
// The error, if any, is a *ValueError.
func DecodeValue(key, id string, value []byte) (Value, error) {
	v, reason, detail := decodeValue(id, value)
	if reason != "" {
		return Value{}, &ValueError{Key: key, Reason: reason, Detail: detail}
	}
	return v, nil
}

func decodeValue(id string, value []byte) (v Value, _ Reason, detail string) {
	if len(value) > MaxValueSize {
		return v, ReasonOversized, fmt.Sprintf("%d bytes, limit %d", len(value), MaxValueSize)
	}
	trimmed := bytes.TrimSpace(value)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		v = Value{Addr: string(trimmed), Weight: endpoint.DefaultWeight}
	} else if fv, ok := decodeFast(trimmed); ok {
		v = fv
	} else {
		var raw anyValue
		if err := json.Unmarshal(trimmed, &raw); err != nil {
			return v, ReasonMalformed, err.Error()
		}
		if r, d := v.fill(&raw); r != "" {
			return v, r, d
		}
	}
	if err := CheckAddr(v.Addr); err != nil {
		return v, ReasonBadAddr, err.Error()
	}
	if d := controlChars(v); d != "" {
		return v, ReasonControlChar, d
	}
	if _, _, err := net.SplitHostPort(id); err == nil && id != v.Addr {
		return v, ReasonAddrMismatch, fmt.Sprintf("key names %q, value names %q", clip(id), v.Addr)
	}
	return v, "", ""
}

// fill sets v from raw, or returns why it cannot.
func (v *Value) fill(raw *anyValue) (Reason, string) {
	if raw.Op != nil {
		var op int
		if err := json.Unmarshal(raw.Op, &op); err != nil || op != 0 {
			return ReasonBadOp, fmt.Sprintf("Op %s, only 0 (Add) is an endpoint", clip(raw.Op))
		}
	}
	addrRaw := raw.Addr
	if raw.MgrAddr != nil {
		if raw.Addr != nil && !bytes.Equal(raw.Addr, raw.MgrAddr) {
			return ReasonBadAddr, fmt.Sprintf("addr %s and Addr %s disagree", clip(raw.Addr), clip(raw.MgrAddr))
		}
		addrRaw = raw.MgrAddr
	}
	if addrRaw == nil {
		return ReasonBadAddr, "no addr field"
	}
	if err := json.Unmarshal(addrRaw, &v.Addr); err != nil {
		return ReasonWrongType, fmt.Sprintf("addr is %s, want a string", clip(addrRaw))
	}
	v.Weight = endpoint.DefaultWeight
	if raw.Weight != nil {
		w, r, d := decodeWeight(raw.Weight)
		if r != "" {
			return r, d
		}
		v.Weight = w
	}
	if raw.Zone != nil {
		if err := json.Unmarshal(raw.Zone, &v.Zone); err != nil || isNull(raw.Zone) {
			return ReasonWrongType, fmt.Sprintf("zone is %s, want a string", clip(raw.Zone))
		}
	}
	if raw.Metadata != nil {
		if err := json.Unmarshal(raw.Metadata, &v.Metadata); err != nil {
			return ReasonWrongType, "metadata is not an object of strings"
		}
	} else if raw.MgrMetadata != nil {
		// etcd's Manager allows any metadata; keep it only when it fits.
		_ = json.Unmarshal(raw.MgrMetadata, &v.Metadata)
	}
	if len(v.Metadata) == 0 {
		v.Metadata = nil // {} and null mean the same
	}
	return "", ""
}

// maxQuoted is how much of a rejected value a reason quotes: enough to
// recognise it. A reason is kept for every rejected key and logged; a 16 KiB
// value of random bytes quoted whole costs up to 64 KiB, per key and client.
const maxQuoted = 64

// clip returns s, cut to maxQuoted bytes and followed by its length when
// longer.
func clip[T ~string | ~[]byte](s T) string {
	if len(s) <= maxQuoted {
		return string(s)
	}
	return fmt.Sprintf("%s...(%d bytes)", s[:maxQuoted], len(s))
}

// clipErr is err's text with any long quote of s in it clipped
// (net.SplitHostPort's errors quote the whole address).
func clipErr(err error, s string) string {
	msg := err.Error()
	if len(s) <= maxQuoted {
		return msg
	}
	return strings.ReplaceAll(msg, s, clip(s))
}

// controlChars names the zone or metadata string of v that holds a control
// character, "" when none does. (The address cannot: checkAddr allows none.)
func controlChars(v Value) string {
	if hasControl(v.Zone) {
		return fmt.Sprintf("zone %q has a control character", clip(v.Zone))
	}
	for k, val := range v.Metadata {
		if hasControl(k) || hasControl(val) {
			return fmt.Sprintf("metadata %q: %q has a control character", clip(k), clip(val))
		}
	}
	return ""
}

func hasControl(s string) bool {
	return strings.ContainsFunc(s, unicode.IsControl)
}

func isNull(b json.RawMessage) bool { return string(b) == "null" }

// decodeWeight accepts a JSON integer in [0, endpoint.MaxWeight].
func decodeWeight(raw json.RawMessage) (uint32, Reason, string) {
	s := string(raw)
	if s == "" || (s[0] != '-' && (s[0] < '0' || s[0] > '9')) {
		return 0, ReasonWrongType, fmt.Sprintf("weight is %s, want a number", clip(s))
	}
	f, err := strconv.ParseFloat(s, 64)
	switch {
	case err != nil && !errors.Is(err, strconv.ErrRange):
		return 0, ReasonWrongType, fmt.Sprintf("weight is %s, want a number", clip(s))
	case f < 0:
		return 0, ReasonBadWeight, fmt.Sprintf("weight %s is negative", clip(s))
	case err != nil || f > endpoint.MaxWeight:
		return 0, ReasonBadWeight, fmt.Sprintf("weight %s is above %d", clip(s), endpoint.MaxWeight)
	case f != math.Trunc(f):
		return 0, ReasonBadWeight, fmt.Sprintf("weight %s is fractional", clip(s))
	}
	return uint32(f), "", ""
}

// CheckAddr accepts host:port with a non-empty host and a port in 1..65535.
func CheckAddr(addr string) error {
	if addr == "" {
		return fmt.Errorf("empty address")
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("address %q: %v", clip(addr), clipErr(err, addr))
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
		return fmt.Errorf("address %q: bad port", clip(addr))
	}
	if host == "" || len(host) > 253 {
		return fmt.Errorf("address %q: bad host", clip(addr))
	}
	if net.ParseIP(host) != nil {
		return nil
	}
	for _, c := range host {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			return fmt.Errorf("address %q: bad host", clip(addr))
		}
	}
	return nil
}

// overrideValue is the stored form of an operator override.
type overrideValue struct {
	Weight json.RawMessage `json:"weight"`
}

// EncodeOverride returns the stored form of an override to weight.
func EncodeOverride(weight uint32) ([]byte, error) {
	if weight > endpoint.MaxWeight {
		return nil, fmt.Errorf("etcdlb: weight %d above %d", weight, endpoint.MaxWeight)
	}
	return []byte(`{"weight":` + strconv.FormatUint(uint64(weight), 10) + `}`), nil
}

// DecodeOverride decodes the override stored under key. The error, if any, is
// a *ValueError.
func DecodeOverride(key string, value []byte) (uint32, error) {
	fail := func(r Reason, d string) (uint32, error) {
		return 0, &ValueError{Key: key, Reason: r, Detail: d}
	}
	if len(value) > MaxValueSize {
		return fail(ReasonOversized, fmt.Sprintf("%d bytes, limit %d", len(value), MaxValueSize))
	}
	var ov overrideValue
	if err := json.Unmarshal(value, &ov); err != nil {
		return fail(ReasonMalformed, err.Error())
	}
	if ov.Weight == nil {
		return fail(ReasonBadWeight, "override has no weight")
	}
	w, r, d := decodeWeight(ov.Weight)
	if r != "" {
		return fail(r, d)
	}
	return w, nil
}
