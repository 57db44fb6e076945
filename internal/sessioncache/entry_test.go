package sessioncache

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

func TestCut(t *testing.T) {
	drop := map[string]bool{"aa": true, "bb": true}
	for _, tc := range []struct {
		name, in, out string
		removed       []string
		left          int
	}{
		{"first", `{"aa":[1],"cc":[2],"dd":[3]}`, `{"cc":[2],"dd":[3]}`, []string{"aa"}, 2},
		{"middle", `{"cc":[2],"aa":[1],"dd":[3]}`, `{"cc":[2],"dd":[3]}`, []string{"aa"}, 2},
		{"last", `{"cc":[2],"dd":[3],"bb":{"x":1}}`, `{"cc":[2],"dd":[3]}`, []string{"bb"}, 2},
		{"all", `{"aa":1,"bb":2}`, `{}`, []string{"aa", "bb"}, 0},
		{"none", `{"cc":1}`, `{"cc":1}`, nil, 1},
		{"empty", `{}`, `{}`, nil, 0},
		{"twice", `{"aa":1,"cc":2,"aa":3}`, `{"cc":2}`, []string{"aa"}, 1},
		// Kept members keep their bytes, odd ones included: numbers cjson
		// would round or reformat, an empty array it would turn into an
		// object, escapes it would rewrite, nested keys equal to a dropped
		// one (only top-level members are sessions).
		{"bytes",
			`{"cc":[1.0,12345678901234567890,1e2,-0,[],"\/","\u00e9",null,{"aa":1}],"aa":[1],"dd":"x\"aa\":y"}`,
			`{"cc":[1.0,12345678901234567890,1e2,-0,[],"\/","\u00e9",null,{"aa":1}],"dd":"x\"aa\":y"}`,
			[]string{"aa"}, 2},
		// Whitespace inside members stays; between members it becomes a
		// bare comma.
		{"spaces", "{ \"cc\" : [ 1 ] ,\n \"aa\": 2 ,\t\"dd\":3 }\n", `{"cc" : [ 1 ],"dd":3}`, []string{"aa"}, 2},
		// A key escaped differently still names the session.
		{"escaped key", `{"\u0061a":1,"cc":2}`, `{"cc":2}`, []string{"aa"}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, removed, left, err := cut([]byte(tc.in), drop)
			if err != nil {
				t.Fatal(err)
			}
			if string(out) != tc.out || !reflect.DeepEqual(removed, tc.removed) || left != tc.left {
				t.Errorf("cut(%s) = %s, %v, %d; want %s, %v, %d", tc.in, out, removed, left, tc.out, tc.removed, tc.left)
			}
		})
	}
}

func TestCutRefusesWhatIsNotOneObject(t *testing.T) {
	for _, in := range []string{``, `[]`, `"aa"`, `null`, `{"aa":1`, `{"aa":1}{}`, `{"aa":1} x`, `{"aa":}`, `{aa:1}`, `{"aa":1,}`, "\xff"} {
		if _, _, _, err := cut([]byte(in), map[string]bool{"aa": true}); !errors.Is(err, errNotObject) {
			t.Errorf("cut(%q): err %v, want errNotObject", in, err)
		}
	}
}

type member struct {
	key string
	val string
}

// members decodes a JSON object into its members in order, values compacted.
func members(t *testing.T, b []byte) []member {
	dec := json.NewDecoder(bytes.NewReader(b))
	if _, err := dec.Token(); err != nil {
		t.Fatalf("%q: %v", b, err)
	}
	var ms []member
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			t.Fatalf("%q: %v", b, err)
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("%q: %v", b, err)
		}
		var c bytes.Buffer
		if err := json.Compact(&c, v); err != nil {
			t.Fatal(err)
		}
		ms = append(ms, member{k.(string), c.String()})
	}
	return ms
}

// FuzzCut: any input gives a clean error or a valid object holding exactly
// the members that were not dropped, in their order, with their bytes.
func FuzzCut(f *testing.F) {
	for _, s := range []string{`{"aa":[1,"x"],"bb":{"c":[]},"cc":1.50}`, `{}`, `{"aa":1,"aa":2}`, `{ "a\u0061" : null }`, `[1]`} {
		f.Add([]byte(s))
	}
	drop := map[string]bool{"aa": true, "cc": true}
	f.Fuzz(func(t *testing.T, in []byte) {
		out, removed, left, err := cut(in, drop)
		if err != nil {
			if !errors.Is(err, errNotObject) {
				t.Fatalf("error %v is not errNotObject", err)
			}
			return
		}
		if !json.Valid(out) {
			t.Fatalf("cut(%q) = %q: not valid JSON", in, out)
		}
		var want []member
		gone := map[string]bool{}
		for _, m := range members(t, in) {
			if drop[m.key] {
				gone[m.key] = true
				continue
			}
			want = append(want, m)
		}
		got := members(t, out)
		if len(got) != len(want) || len(got) != left || len(removed) != len(gone) {
			t.Fatalf("cut(%q) = %q (left %d, removed %v); want members %v", in, out, left, removed, want)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("cut(%q) = %q: member %d is %v, want %v", in, out, i, got[i], want[i])
			}
		}
		for _, k := range removed {
			if !gone[k] {
				t.Fatalf("cut(%q) reports %q removed, which it did not hold", in, k)
			}
		}
	})
}
