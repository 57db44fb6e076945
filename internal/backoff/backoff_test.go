package backoff

import (
	"context"
	"testing"
	"time"
)

func TestStep(t *testing.T) {
	ms := time.Millisecond
	for _, c := range []struct {
		initial, limit time.Duration
		attempt        int
		want           time.Duration
	}{
		{250 * ms, 15 * time.Second, 1, 250 * ms},
		{250 * ms, 15 * time.Second, 2, 500 * ms},
		{250 * ms, 15 * time.Second, 6, 8 * time.Second},
		{250 * ms, 15 * time.Second, 7, 15 * time.Second},
		{250 * ms, 15 * time.Second, 1000, 15 * time.Second}, // no overflow
		{100 * ms, 100 * ms << 10, 11, 100 * ms << 10},
		{100 * ms, 100 * ms << 10, 12, 100 * ms << 10},
		{100 * ms, 100 * ms << 10, 0, 100 * ms},
	} {
		if got := Step(c.initial, c.limit, c.attempt); got != c.want {
			t.Errorf("Step(%s, %s, %d) = %s, want %s", c.initial, c.limit, c.attempt, got, c.want)
		}
	}
}

func TestJitter(t *testing.T) {
	lo, hi := time.Second, time.Duration(0)
	for range 1000 {
		d := Jitter(time.Second)
		lo, hi = min(lo, d), max(hi, d)
	}
	if lo < 800*time.Millisecond || hi > 1200*time.Millisecond || hi-lo < 200*time.Millisecond {
		t.Errorf("1000 jittered seconds spread over [%s, %s], want a spread inside [0.8s, 1.2s]", lo, hi)
	}
}

func TestSleepEndsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	if !Sleep(ctx, time.Millisecond) || !Sleep(ctx, 0) {
		t.Error("a sleep with a live context did not pass")
	}
	cancel()
	if Sleep(ctx, time.Hour) || Sleep(ctx, 0) {
		t.Error("a sleep with an ended context passed")
	}
}
