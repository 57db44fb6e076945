package duration

import (
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	day := 24 * time.Hour
	good := map[string]time.Duration{
		"0": 0, "1500": 1500 * time.Millisecond, "30-days": 30 * day, "30 days": 30 * day,
		"10 days": 10 * day, "1 month": 30 * day, "2 months": 60 * day, "1 year": 365 * day,
		"12h": 12 * time.Hour, "90m": 90 * time.Minute, "500ms": 500 * time.Millisecond,
		"1h30m": 90 * time.Minute, " 7 Days ": 7 * day, "1-day": day, "3d": 3 * day, "0s": 0,
	}
	for in, want := range good {
		got, err := Parse(in)
		if err != nil || got != want {
			t.Errorf("Parse(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1", "-5m", "abc", "30 fortnights", "days", "1.5 days", "99999999999999999999", "9999999999999 years", "30--days x"} {
		if got, err := Parse(in); err == nil {
			t.Errorf("Parse(%q) = %v, want error", in, got)
		}
	}
}

func TestFormatReadsBack(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want string
	}{
		{0, "0"}, {500 * time.Millisecond, "500ms"}, {time.Second, "1s"}, {90 * time.Minute, "90m"},
		{12 * time.Hour, "12h"}, {24 * time.Hour, "1 day"}, {7 * 24 * time.Hour, "7 days"},
		{1500 * time.Microsecond, "1.5ms"},
	} {
		got := Format(c.d)
		if got != c.want {
			t.Errorf("Format(%v) = %q, want %q", c.d, got, c.want)
		}
		if back, err := Parse(got); err != nil || back != c.d {
			t.Errorf("Parse(Format(%v)) = %v, %v", c.d, back, err)
		}
	}
}

func TestSuspectBare(t *testing.T) {
	for in, want := range map[string]string{
		"30":       "30 ms; did you mean 30-days?",
		" 7 ":      "7 ms; did you mean 7-days?",
		"86399999": "86399999 ms; did you mean 86399999-days?",
		"86400000": "", // a day, spelled in milliseconds: deliberate
		"0":        "", // the stage off
		"30-days":  "",
		"500ms":    "",
	} {
		got, suspect := SuspectBare(in)
		if got != want || suspect != (want != "") {
			t.Errorf("SuspectBare(%q) = %q, %v; want %q", in, got, suspect, want)
		}
	}
}
