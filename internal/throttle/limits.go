package throttle

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// Limits are the current limits, as an operator may have changed them.
type Limits struct {
	MaxReplicaLag    time.Duration
	MaxLoad          Thresholds
	CriticalLoad     Thresholds
	MaxHistoryLength int64 // Off when not checked
	BatchSize        int   // the largest batch size
	MaxBatchTime     time.Duration
}

// Limits returns the current limits.
func (t *Throttler) Limits() Limits {
	t.mu.Lock()
	defer t.mu.Unlock()
	l := Limits{MaxReplicaLag: t.lim.maxLag, MaxLoad: slices.Clone(t.lim.maxLoad), CriticalLoad: slices.Clone(t.lim.criticalLoad),
		MaxHistoryLength: t.lim.maxHistory, BatchSize: t.sizer.Max(), MaxBatchTime: t.sizer.MaxTime()}
	if l.MaxHistoryLength <= 0 {
		l.MaxHistoryLength = Off
	}
	return l
}

// BatchSize is the number of rows for the next batch.
func (t *Throttler) BatchSize() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.sizer.Size()
}

// Observe records a finished batch of rows that took d, from its first
// statement to its commit (not the wait before it), and returns the next
// batch size.
func (t *Throttler) Observe(rows int, d time.Duration) int {
	t.mu.Lock()
	before := t.sizer.Size()
	after := t.sizer.Observe(rows, d)
	maxTime := t.sizer.MaxTime()
	reachedMax := after > before && after == t.sizer.Max()
	t.status.BatchSize = after
	t.mu.Unlock()
	switch {
	case after < before:
		t.logf("batch size %d: a batch of %d rows took %s > max batch time %s", after, rows, fmtDur(d), fmtDur(maxTime))
	case reachedMax:
		t.logf("batch size back to %d", after)
	}
	return after
}

// The Set methods change a limit while apply runs (the control socket) and
// return the previous value. The next Wait judges by the new limits, even
// against a reading it reuses.

// SetBatchSize sets the largest batch size, and the next batch's.
func (t *Throttler) SetBatchSize(n int) (old int, err error) {
	if n < 1 || n > t.cfg.BatchSizeCap {
		return 0, fmt.Errorf("batch size %d is out of range (1..%d)", n, t.cfg.BatchSizeCap)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	old = t.sizer.Max()
	t.sizer.SetMax(n)
	t.status.BatchSize = n
	return old, nil
}

// SetMaxBatchTime changes --maxBatchTime; Off keeps the batch size fixed.
func (t *Throttler) SetMaxBatchTime(d time.Duration) (old time.Duration, err error) {
	if d <= 0 && d != Off {
		return 0, fmt.Errorf("max batch time %s: want more than 0", d)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	old = t.sizer.MaxTime()
	t.sizer.SetMaxTime(d)
	return old, nil
}

// SetMaxReplicaLag changes --maxReplicaLag.
func (t *Throttler) SetMaxReplicaLag(d time.Duration) (old time.Duration, err error) {
	if d <= 0 {
		return 0, fmt.Errorf("max replica lag %s: want more than 0", d)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	old = t.lim.maxLag
	t.lim.maxLag = d
	return old, nil
}

// SetMaxLoad replaces --maxLoad with spec (ParseThresholds; "" or "none"
// for no limit) and returns the previous spec.
func (t *Throttler) SetMaxLoad(spec string) (old string, err error) {
	return t.setThresholds(spec, func(l *limits) *Thresholds { return &l.maxLoad })
}

// SetCriticalLoad replaces --criticalLoad likewise.
func (t *Throttler) SetCriticalLoad(spec string) (old string, err error) {
	return t.setThresholds(spec, func(l *limits) *Thresholds { return &l.criticalLoad })
}

func (t *Throttler) setThresholds(spec string, field func(*limits) *Thresholds) (string, error) {
	ts, err := ParseThresholds(spec)
	if err != nil {
		return "", err
	}
	if len(ts) > 0 && t.cfg.Primary == nil {
		return "", errors.New("no primary database to read load from")
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	f := field(&t.lim)
	old := f.String()
	*f = ts
	if len(t.lim.criticalLoad) == 0 {
		t.criticalSince = time.Time{}
	}
	return old, nil
}

// SetMaxHistoryLength changes --maxHistoryLength; Off stops checking.
func (t *Throttler) SetMaxHistoryLength(n int64) (old int64, err error) {
	if n <= 0 && n != Off {
		return 0, fmt.Errorf("max history length %d: want more than 0", n)
	}
	if n > 0 && t.cfg.Primary == nil {
		return 0, errors.New("no primary database to read the history length from")
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	old = t.lim.maxHistory
	if old <= 0 {
		old = Off
	}
	t.lim.maxHistory = max(0, n)
	return old, nil
}
