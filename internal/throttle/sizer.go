package throttle

import "time"

// Off turns off a limit whose zero value means its default: MaxBatchTime
// here and in Config, and Config's MaxHistoryLength and CacheFor.
const Off = -1

// Sizer adapts the batch size to how long batches take, so that the row
// locks one transaction holds stay short even when the server slows down:
//
//   - a batch that took longer than MaxBatchTime halves the size (from the
//     rows that batch really had, which may be fewer at a section's end),
//     down to 1;
//   - a full batch (as many rows as the size) that took at most half of
//     MaxBatchTime grows it by a quarter (at least 1 row), up to the maximum;
//   - anything in between keeps the size.
//
// Halving at once and growing by steps is additive-increase/multiplicative-
// decrease, as TCP does: it backs off quickly when the server suffers and
// probes back gently, settling below the limit instead of oscillating
// around it. From 1 row back to 1000 takes about 30 quick batches. The
// half-time margin leaves room for a batch of 1.25 times the size to stay
// under the limit when time grows with rows.
//
// A Sizer is not safe for concurrent use; the Throttler guards its own.
type Sizer struct {
	max     int
	size    int
	maxTime time.Duration // ≤ 0: no adaptation, always max
}

// NewSizer starts at max rows a batch. maxBatchTime ≤ 0 turns adaptation
// off.
func NewSizer(max int, maxBatchTime time.Duration) *Sizer {
	if max < 1 {
		max = 1
	}
	return &Sizer{max: max, size: max, maxTime: maxBatchTime}
}

// Size is the number of rows for the next batch.
func (s *Sizer) Size() int { return s.size }

// Max is the configured largest size.
func (s *Sizer) Max() int { return s.max }

// MaxTime is the batch duration above which batches shrink; ≤ 0 when off.
func (s *Sizer) MaxTime() time.Duration { return s.maxTime }

// Observe takes a finished batch of rows that took d (from its first
// statement to its commit) and returns the next size.
func (s *Sizer) Observe(rows int, d time.Duration) int {
	if s.maxTime <= 0 || rows <= 0 {
		return s.size
	}
	switch {
	case d > s.maxTime:
		s.size = max(1, min(s.size, rows)/2)
	case d <= s.maxTime/2 && rows >= s.size:
		s.size = min(s.max, s.size+max(1, s.size/4))
	}
	return s.size
}

// SetMax sets the largest size and starts the next batch at it, as an
// operator who asks for a batch size expects; slow batches then shrink it
// again.
func (s *Sizer) SetMax(n int) {
	s.max = max(1, n)
	s.size = s.max
}

// SetMaxTime changes MaxBatchTime; ≤ 0 turns adaptation off and goes back
// to the largest size.
func (s *Sizer) SetMaxTime(d time.Duration) {
	s.maxTime = d
	if d <= 0 {
		s.size = s.max
	}
}
