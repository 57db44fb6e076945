package sessioncache

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// errNotObject marks a cached value that is not one JSON object. Such a value
// is left as it is: it holds no entry this package could remove exactly.
var errNotObject = errors.New("cached value is not a JSON object")

// cut returns raw without the top-level members whose key is in drop.
//
// The kept members are copied byte for byte: only the separators between
// members are rewritten (as a bare comma; FxA's cjson writes no whitespace,
// so for its values the result equals the input with the removed members cut
// out). Decoding and re-encoding instead, as FxA's own Lua scripts do with
// cjson, would rewrite the other sessions' entries: cjson prints numbers with
// 14 significant digits, turns an empty array into an object, escapes "/" and
// unescapes \u sequences.
//
// removed lists the keys found and cut (each once, even if the object named
// it twice); left is the number of members kept.
func cut(raw []byte, drop map[string]bool) (out []byte, removed []string, left int, err error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return nil, nil, 0, errNotObject
	}
	var buf bytes.Buffer
	buf.Grow(len(raw))
	buf.WriteByte('{')
	seen := map[string]bool{}
	prev := dec.InputOffset()
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return nil, nil, 0, fmt.Errorf("%w: %v", errNotObject, err)
		}
		key, ok := kt.(string)
		if !ok {
			return nil, nil, 0, errNotObject
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, nil, 0, fmt.Errorf("%w: %v", errNotObject, err)
		}
		end := dec.InputOffset()
		// The segment since the previous value is [ws] [, ws] "key" ws : ws
		// value: its first quote opens the key.
		seg := raw[prev:end]
		prev = end
		if drop[key] {
			if !seen[key] {
				seen[key] = true
				removed = append(removed, key)
			}
			continue
		}
		if left > 0 {
			buf.WriteByte(',')
		}
		buf.Write(seg[bytes.IndexByte(seg, '"'):])
		left++
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return nil, nil, 0, errNotObject
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, nil, 0, fmt.Errorf("%w: data after the object", errNotObject)
	}
	buf.WriteByte('}')
	return buf.Bytes(), removed, left, nil
}
