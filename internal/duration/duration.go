// Package duration parses the durations the old FxA pruning tool accepted
// ("30-days", "10 days", "1 month") as well as Go's ("12h", "500ms"). A plain
// number is milliseconds.
package duration

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

const day = 24 * time.Hour

// units maps each accepted unit word (singular, plural and short forms) to
// its length. A month is 30 days and a year 365, as in the old tool.
var units = map[string]time.Duration{
	"ms": time.Millisecond, "millisecond": time.Millisecond, "milliseconds": time.Millisecond,
	"s": time.Second, "sec": time.Second, "secs": time.Second, "second": time.Second, "seconds": time.Second,
	"m": time.Minute, "min": time.Minute, "mins": time.Minute, "minute": time.Minute, "minutes": time.Minute,
	"h": time.Hour, "hr": time.Hour, "hrs": time.Hour, "hour": time.Hour, "hours": time.Hour,
	"d": day, "day": day, "days": day,
	"w": 7 * day, "week": 7 * day, "weeks": 7 * day,
	"month": 30 * day, "months": 30 * day,
	"y": 365 * day, "year": 365 * day, "years": 365 * day,
}

// Parse reads one duration. It accepts "N", "N unit", "N-unit", "Nunit"
// (N a non-negative integer) and Go durations such as "1h30m".
func Parse(s string) (time.Duration, error) {
	in := strings.TrimSpace(s)
	if in == "" {
		return 0, fmt.Errorf("empty duration")
	}
	if n, err := strconv.ParseUint(in, 10, 64); err == nil {
		if n > uint64(math.MaxInt64/int64(time.Millisecond)) {
			return 0, fmt.Errorf("duration %q is too large", s)
		}
		return time.Duration(n) * time.Millisecond, nil
	}
	// "30-days", "30 days", "30days"
	i := 0
	for i < len(in) && in[i] >= '0' && in[i] <= '9' {
		i++
	}
	if i > 0 {
		rest := strings.TrimLeft(in[i:], " -")
		if u, ok := units[strings.ToLower(rest)]; ok {
			n, err := strconv.ParseInt(in[:i], 10, 64)
			if err != nil || n > math.MaxInt64/int64(u) {
				return 0, fmt.Errorf("duration %q is too large", s)
			}
			return time.Duration(n) * u, nil
		}
	}
	if d, err := time.ParseDuration(in); err == nil {
		if d < 0 {
			return 0, fmt.Errorf("duration %q is negative", s)
		}
		return d, nil
	}
	return 0, fmt.Errorf("cannot read %q as a duration (examples: 30-days, \"10 days\", \"1 month\", 12h, 500ms, or a number of milliseconds)", s)
}

// Format writes d in the shortest form Parse reads back: whole days as
// "7 days", then whole hours, minutes, seconds or milliseconds ("500ms"),
// else Go's form. Flag defaults are written with it, so that the help shows
// the same spelling an operator would type.
func Format(d time.Duration) string {
	switch {
	case d == 0:
		return "0"
	case d%day == 0 && d/day == 1:
		return "1 day"
	case d%day == 0:
		return strconv.FormatInt(int64(d/day), 10) + " days"
	case d%time.Hour == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	case d%time.Minute == 0:
		return strconv.FormatInt(int64(d/time.Minute), 10) + "m"
	case d%time.Second == 0:
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	case d%time.Millisecond == 0:
		return strconv.FormatInt(int64(d/time.Millisecond), 10) + "ms"
	}
	return d.String()
}

// SuspectBare says whether s is a bare number (milliseconds, as the old
// tool read it) under a day, and if so what it means and what was likely
// meant: "--maxTokenAge 30" is 30 milliseconds and lists nearly every row,
// where "30-days" was meant. Zero (a stage off) is not suspect.
func SuspectBare(s string) (meaning string, suspect bool) {
	in := strings.TrimSpace(s)
	n, err := strconv.ParseUint(in, 10, 64)
	if err != nil || n == 0 || n >= uint64(day/time.Millisecond) {
		return "", false
	}
	return fmt.Sprintf("%s ms; did you mean %s-days?", in, in), true
}
