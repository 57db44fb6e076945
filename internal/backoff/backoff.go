// Package backoff is the waiting between retries that apply's batches and
// the session-cache cleaner share: exponential steps, ±20% jitter, and a
// sleep that ends with its context.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Step is the wait before retry number attempt (1-based), without jitter:
// initial doubled attempt-1 times, at most limit.
func Step(initial, limit time.Duration, attempt int) time.Duration {
	d := initial
	for i := 1; i < attempt && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

// Jitter spreads d by ±20%, so that several clients that lost the same
// server do not come back in lockstep.
func Jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// Sleep waits d or until ctx ends; it reports whether the full wait passed.
func Sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
