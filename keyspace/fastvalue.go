package keyspace

import "github.com/etcdlb/etcdlb/endpoint"

// decodeFast decodes the plain form of etcdlb's own JSON, the one Register
// writes: the keys addr, weight, zone and metadata spelt exactly, ASCII
// strings without escapes, a weight of plain digits. It is several times
// faster than encoding/json and reports false for anything else, which the
// full decoder then handles; for what it accepts, it gives the same Value.
func decodeFast(b []byte) (v Value, ok bool) {
	d := fastDecoder{b: b}
	v.Weight = endpoint.DefaultWeight
	if !d.byte('{') {
		return v, false
	}
	sawAddr := false
	if d.peek('}') {
		return v, false // no addr: let the full decoder say so
	}
	for {
		key, ok := d.str()
		if !ok || !d.byte(':') {
			return v, false
		}
		switch key {
		case "addr":
			if v.Addr, ok = d.str(); !ok {
				return v, false
			}
			sawAddr = true
		case "zone":
			if v.Zone, ok = d.str(); !ok {
				return v, false
			}
		case "weight":
			if v.Weight, ok = d.uint(); !ok {
				return v, false
			}
		case "metadata":
			if v.Metadata, ok = d.strMap(); !ok {
				return v, false
			}
		default:
			return v, false
		}
		if d.byte(',') {
			continue
		}
		if !d.byte('}') || !d.end() || !sawAddr {
			return v, false
		}
		if len(v.Metadata) == 0 {
			v.Metadata = nil
		}
		return v, true
	}
}

type fastDecoder struct {
	b []byte
	i int
}

func (d *fastDecoder) ws() {
	for d.i < len(d.b) && (d.b[d.i] == ' ' || d.b[d.i] == '\t' || d.b[d.i] == '\n' || d.b[d.i] == '\r') {
		d.i++
	}
}

// byte consumes c after optional white space.
func (d *fastDecoder) byte(c byte) bool {
	d.ws()
	if d.i < len(d.b) && d.b[d.i] == c {
		d.i++
		return true
	}
	return false
}

func (d *fastDecoder) peek(c byte) bool {
	d.ws()
	return d.i < len(d.b) && d.b[d.i] == c
}

func (d *fastDecoder) end() bool {
	d.ws()
	return d.i == len(d.b)
}

// str reads a string of printable ASCII without escapes.
func (d *fastDecoder) str() (string, bool) {
	if !d.byte('"') {
		return "", false
	}
	start := d.i
	for ; d.i < len(d.b); d.i++ {
		c := d.b[d.i]
		switch {
		case c == '"':
			s := string(d.b[start:d.i])
			d.i++
			return s, true
		case c == '\\' || c < 0x20 || c >= 0x80:
			return "", false
		}
	}
	return "", false
}

// uint reads up to 7 digits without a leading zero, and no fraction or
// exponent.
func (d *fastDecoder) uint() (uint32, bool) {
	d.ws()
	start := d.i
	var n uint32
	for d.i < len(d.b) && d.b[d.i] >= '0' && d.b[d.i] <= '9' {
		n = n*10 + uint32(d.b[d.i]-'0')
		d.i++
	}
	l := d.i - start
	if l == 0 || l > 7 || l > 1 && d.b[start] == '0' || n > endpoint.MaxWeight {
		return 0, false
	}
	if d.i < len(d.b) && (d.b[d.i] == '.' || d.b[d.i] == 'e' || d.b[d.i] == 'E') {
		return 0, false
	}
	return n, true
}

func (d *fastDecoder) strMap() (map[string]string, bool) {
	if !d.byte('{') {
		return nil, false
	}
	m := map[string]string{}
	if d.byte('}') {
		return m, true
	}
	for {
		k, ok := d.str()
		if !ok || !d.byte(':') {
			return nil, false
		}
		if m[k], ok = d.str(); !ok {
			return nil, false
		}
		if d.byte(',') {
			continue
		}
		return m, d.byte('}')
	}
}
