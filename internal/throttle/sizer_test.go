package throttle

import (
	"testing"
	"time"
)

func TestSizerShrinksAndGrowsBack(t *testing.T) {
	s := NewSizer(1000, 500*time.Millisecond)
	if s.Size() != 1000 {
		t.Fatalf("starts at %d, want the maximum 1000", s.Size())
	}
	// Slow batches halve the size, down to 1 and not below.
	want := []int{500, 250, 125, 62, 31, 15, 7, 3, 1, 1}
	for i, w := range want {
		if got := s.Observe(s.Size(), 600*time.Millisecond); got != w {
			t.Fatalf("slow batch %d: size %d, want %d", i+1, got, w)
		}
	}
	// Between half and all of the limit: held.
	if got := s.Observe(1, 400*time.Millisecond); got != 1 {
		t.Fatalf("batch at 80%% of the limit changed the size to %d", got)
	}
	if got := s.Observe(1, 500*time.Millisecond); got != 1 {
		t.Fatalf("batch exactly at the limit changed the size to %d", got)
	}
	// Quick full batches grow it back by a quarter (at least 1), to the
	// maximum and not beyond.
	steps := 0
	prev := s.Size()
	for s.Size() < 1000 {
		got := s.Observe(s.Size(), 10*time.Millisecond)
		if got <= prev || got > prev+max(1, prev/4) {
			t.Fatalf("growth step from %d to %d, want +max(1, size/4)", prev, got)
		}
		prev = got
		steps++
		if steps > 100 {
			t.Fatal("never grew back to the maximum")
		}
	}
	if got := s.Observe(1000, time.Millisecond); got != 1000 {
		t.Fatalf("grew past the maximum: %d", got)
	}
	if steps < 20 || steps > 40 {
		t.Errorf("grew back from 1 to 1000 in %d batches, documented as about 30", steps)
	}
}

func TestSizerPartialBatches(t *testing.T) {
	s := NewSizer(1000, 500*time.Millisecond)
	// A short batch (a section's end) that was quick is no evidence that a
	// bigger one would be: no growth.
	s.Observe(s.Size(), time.Second) // 500
	if got := s.Observe(20, time.Millisecond); got != 500 {
		t.Fatalf("a quick 20-row batch changed the size 500 to %d", got)
	}
	// A short batch that was slow halves from the rows it really had.
	if got := s.Observe(40, time.Second); got != 20 {
		t.Fatalf("a slow 40-row batch left size %d, want 20", got)
	}
	if got := s.Observe(0, time.Hour); got != 20 {
		t.Fatalf("an empty batch changed the size to %d", got)
	}
}

func TestSizerOffAndRuntimeChanges(t *testing.T) {
	s := NewSizer(100, Off)
	if got := s.Observe(100, time.Hour); got != 100 {
		t.Fatalf("with max batch time off a slow batch changed the size to %d", got)
	}
	s.SetMaxTime(time.Second)
	s.Observe(100, 2*time.Second)
	if s.Size() != 50 {
		t.Fatalf("size %d after a slow batch, want 50", s.Size())
	}
	s.SetMax(300)
	if s.Size() != 300 || s.Max() != 300 {
		t.Fatalf("SetMax(300): size %d max %d, want the next batch at 300", s.Size(), s.Max())
	}
	s.SetMaxTime(Off)
	if s.Size() != 300 {
		t.Fatalf("turning adaptation off left size %d, want the maximum", s.Size())
	}
}
