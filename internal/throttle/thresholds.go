package throttle

import (
	"fmt"
	"strconv"
	"strings"
)

// Threshold is a global status variable and the value above which it counts
// as exceeded: Threads_running=25 is exceeded at 26.
type Threshold struct {
	Name  string // as SHOW GLOBAL STATUS names it; matched case-insensitively
	Limit int64
}

// Thresholds are the limits of --maxLoad or --criticalLoad.
type Thresholds []Threshold

// String formats thresholds the way ParseThresholds reads them, or "none".
func (ts Thresholds) String() string {
	if len(ts) == 0 {
		return "none"
	}
	parts := make([]string, len(ts))
	for i, t := range ts {
		parts[i] = t.Name + "=" + strconv.FormatInt(t.Limit, 10)
	}
	return strings.Join(parts, ",")
}

// ParseThresholds reads "VAR=N[,VAR=N...]" (pt-online-schema-change's
// "VAR:N" is accepted too): any global status variable with a whole-number
// limit. An empty spec (or "none") means no thresholds. Errors are one line
// naming the part that is wrong.
func ParseThresholds(spec string) (Thresholds, error) {
	spec = strings.TrimSpace(spec)
	if spec == "" || strings.EqualFold(spec, "none") {
		return nil, nil
	}
	var ts Thresholds
	for _, part := range strings.Split(spec, ",") {
		p := strings.TrimSpace(part)
		if p == "" {
			return nil, fmt.Errorf("%q: empty entry (want VAR=N[,VAR=N], e.g. Threads_running=25)", spec)
		}
		name, val, ok := strings.Cut(p, "=")
		if !ok {
			name, val, ok = strings.Cut(p, ":")
		}
		if !ok {
			return nil, fmt.Errorf("%q: %q has no limit (want VAR=N, e.g. Threads_running=25)", spec, p)
		}
		name, val = strings.TrimSpace(name), strings.TrimSpace(val)
		if !validName(name) {
			return nil, fmt.Errorf("%q: %q is not a status variable name (letters, digits and _ only)", spec, name)
		}
		n, err := strconv.ParseInt(val, 10, 64)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%q: limit %q of %s is not a whole number ≥ 0", spec, val, name)
		}
		for _, t := range ts {
			if strings.EqualFold(t.Name, name) {
				return nil, fmt.Errorf("%q: %s is given twice", spec, name)
			}
		}
		ts = append(ts, Threshold{Name: name, Limit: n})
	}
	return ts, nil
}

// validName admits status variable names only; they are the one piece of
// SQL the throttler builds from user input, so nothing else may pass.
func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}
