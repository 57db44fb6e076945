package throttle

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// State is what the throttler last decided.
type State string

const (
	Running   State = "running"   // nothing exceeded
	Throttled State = "throttled" // a limit is exceeded (or a signal cannot be read)
	Paused    State = "paused"    // an operator paused apply (Config.Pause)
	Critical  State = "critical"  // critical load confirmed: apply stops
)

// Reading is a status variable's value at the last check.
type Reading struct {
	Name  string
	Value int64
}

// ReasonTime is how long apply was held for one reason.
type ReasonTime struct {
	Reason string // "replica lag (replica-2)", "Threads_running", "history length", "paused", ...
	Time   time.Duration
}

// Status is a snapshot for the status line, the control socket and the
// outcome.
type Status struct {
	State   State
	Reasons []string // every reason at the last check, e.g. "replica lag 3.2s > 1s (replica-2)"

	BatchSize     int
	Lag           time.Duration // worst replica lag read at the last check; -1 = none read
	LagReplica    string
	Load          []Reading // the MaxLoad and CriticalLoad variables
	HistoryLength int64     // -1 = not read
	CheckedAt     time.Time // zero before the first check

	Throttled    time.Duration // wall time held, in all
	ThrottledFor []ReasonTime  // per reason, longest first; reasons overlap
}

// String is the state with every reason: "running", or
// "throttled: replica lag 3.2s > 1s (replica-2); Threads_running 31 > 25".
func (s Status) String() string {
	if len(s.Reasons) == 0 {
		return string(s.State)
	}
	return string(s.State) + ": " + strings.Join(s.Reasons, "; ")
}

// Details are the figures next to the state: "batch 500, lag 0.2s
// (replica-2), Threads_running 3, history 1234". Signals not read are left
// out.
func (s Status) Details() string {
	parts := []string{"batch " + strconv.Itoa(s.BatchSize)}
	if s.Lag >= 0 {
		parts = append(parts, fmt.Sprintf("lag %s (%s)", fmtDur(s.Lag), s.LagReplica))
	}
	for _, r := range s.Load {
		parts = append(parts, fmt.Sprintf("%s %d", r.Name, r.Value))
	}
	if s.HistoryLength >= 0 {
		parts = append(parts, fmt.Sprintf("history %d", s.HistoryLength))
	}
	return strings.Join(parts, ", ")
}

// Spent formats the time held per reason for the outcome: "throttled 42s:
// replica lag (replica-2) 30s, Threads_running 12s", or "never throttled".
func (s Status) Spent() string {
	if s.Throttled == 0 {
		return "never throttled"
	}
	parts := make([]string, len(s.ThrottledFor))
	for i, r := range s.ThrottledFor {
		parts[i] = r.Reason + " " + fmtDur(r.Time)
	}
	return fmt.Sprintf("throttled %s: %s", fmtDur(s.Throttled), strings.Join(parts, ", "))
}

// Status returns the state of the last check, with the time held so far
// (the current spell included).
func (t *Throttler) Status() Status {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.status
	s.Reasons = slices.Clone(s.Reasons)
	s.Load = slices.Clone(s.Load)
	s.BatchSize = t.sizer.Size()
	spent := make(map[string]time.Duration, len(t.spent)+len(t.heldKeys))
	for k, d := range t.spent {
		spent[k] = d
	}
	s.Throttled = t.spentTotal
	if !t.heldSince.IsZero() {
		d := time.Since(t.heldSince)
		s.Throttled += d
		for _, k := range t.heldKeys {
			spent[k] += d
		}
	}
	for k, d := range spent {
		s.ThrottledFor = append(s.ThrottledFor, ReasonTime{k, d})
	}
	slices.SortFunc(s.ThrottledFor, func(a, b ReasonTime) int {
		if a.Time != b.Time {
			return int(b.Time - a.Time)
		}
		return strings.Compare(a.Reason, b.Reason)
	})
	return s
}

// fmtDur prints durations the way operators read lag: "3.2s", "1s",
// "0.25s", "12m3s".
func fmtDur(d time.Duration) string {
	switch {
	case d >= time.Minute:
		return d.Round(time.Second).String()
	case d >= 10*time.Second:
		return strconv.FormatFloat(d.Seconds(), 'f', 0, 64) + "s"
	case d >= time.Second:
		return strconv.FormatFloat(float64(d.Round(100*time.Millisecond))/float64(time.Second), 'f', -1, 64) + "s"
	default:
		return strconv.FormatFloat(float64(d.Round(10*time.Millisecond))/float64(time.Second), 'f', -1, 64) + "s"
	}
}
