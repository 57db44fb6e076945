package applier

import (
	"bytes"
	"strings"
	"testing"

	"prune-tokens/internal/logging"
)

func TestStatusLines(t *testing.T) {
	var b bytes.Buffer
	p := newProgress(logging.New(&b, logging.Text, logging.Options{}), &b, ProgressLines, 1, "apply", 100, 1000)
	p.start = p.start.Add(-2e9) // 2 s ago: 200 rows in 2 s
	p.last = p.start
	p.update(300, Counts{Deleted: 250, Gone: 30, Skipped: 20})
	line := b.String()
	for _, want := range []string{"apply: 300/1000 rows (30.0%)", "rows/s", "ETA", "deleted 250, already gone 30, skipped by guard 20"} {
		if !strings.Contains(line, want) {
			t.Errorf("status %q lacks %q", line, want)
		}
	}
	if strings.Count(line, "\n") != 1 {
		t.Errorf("want one line, got %q", line)
	}
	b.Reset()
	off := newProgress(logging.New(&b, logging.Text, logging.Options{}), &b, ProgressOff, 1, "apply", 0, 10)
	off.update(5, Counts{})
	if b.Len() != 0 {
		t.Errorf("ProgressOff printed %q", b.String())
	}
}

// A bar written to a non-terminal still works (operators may force it).
func TestProgressBar(t *testing.T) {
	var b bytes.Buffer
	p := newProgress(logging.New(&b, logging.Text, logging.Options{}), &b, ProgressBar, 0, "apply", 0, 10)
	p.update(10, Counts{Deleted: 10})
	p.finish()
	if !strings.Contains(b.String(), "10/10") {
		t.Errorf("bar output %q", b.String())
	}
}
