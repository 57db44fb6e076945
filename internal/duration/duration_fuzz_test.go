package duration

import (
	"strings"
	"testing"
)

// FuzzParse: any string yields a non-negative duration or a one-line error
// that quotes the input; an accepted duration reads back from Go's own
// spelling of it, so no input is silently misread as another value.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"0", "1500", "30-days", "30 days", "1 month", "1 year", "12h", "90m", "500ms",
		"1h30m", " 7 Days ", "-1", "1.5 days", "99999999999999999999", "9999999999999 years", "30--days x", "1e3", "+5m"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := Parse(s)
		if err != nil {
			if strings.ContainsAny(err.Error(), "\r\n") {
				t.Fatalf("Parse(%q): error spans lines: %q", s, err)
			}
			return
		}
		if d < 0 {
			t.Fatalf("Parse(%q) = %v, negative", s, d)
		}
		back, err := Parse(d.String())
		if err != nil || back != d {
			t.Fatalf("Parse(%q) = %v, but Parse(%q) = %v, %v", s, d, d.String(), back, err)
		}
		if strings.TrimSpace(s) == "" {
			t.Fatalf("Parse(%q) accepted blank input", s)
		}
	})
}
