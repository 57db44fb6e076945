package report

import (
	"fmt"
	"io"
	"strconv"
	"time"

	"prune-tokens/applier"
)

// Apply renders the outcome of an apply (or dry run): per stage and table the
// rows planned and what became of them, where deleted + already gone +
// skipped by guard = planned for every section that was fully processed.
func Apply(w io.Writer, r *applier.Result) error {
	ew := &errWriter{w: w}
	header := []string{"Stage", "Table", "Planned", "Deleted", "Already gone", "Skipped by guard"}
	title := "Outcome"
	if r.DryRun {
		header = []string{"Stage", "Table", "Planned", "Would delete", "Already gone", "Would skip (guard)"}
		title = "Dry run (nothing was deleted)"
	}
	if !r.Complete {
		header = append(header, "Not yet processed")
	}
	n := func(v int64) string { return strconv.FormatInt(v, 10) }
	var body [][]string
	for _, s := range r.Sections {
		row := []string{s.Section.Stage, s.Section.Table, n(s.Planned), n(s.Deleted), n(s.Gone), n(s.Skipped)}
		if !r.Complete {
			row = append(row, n(s.Planned-s.Processed()))
		}
		body = append(body, row)
	}
	planned, tot := r.Totals()
	footer := []string{"total", "", n(planned), n(tot.Deleted), n(tot.Gone), n(tot.Skipped)}
	right := []int{2, 3, 4, 5}
	if !r.Complete {
		footer = append(footer, n(planned-tot.Processed()))
		right = append(right, 6)
	}
	fmt.Fprintf(ew, "\n%s\n", title)
	table(ew, false, header, body, footer, right...)

	verb := "deleted"
	if r.DryRun {
		verb = "would be deleted"
	}
	if tot.Unverified > 0 || tot.Devices > 0 {
		fmt.Fprintf(ew, "With their sessions, %d unverifiedTokens rows and %d devices rows %s.\n", tot.Unverified, tot.Devices, verb)
	}
	state := "complete"
	switch {
	case r.AlreadyComplete && !r.DryRun:
		state = "complete (already before this run)"
	case !r.Complete:
		state = fmt.Sprintf("incomplete: %d of %d rows processed", r.Done, r.Total)
	}
	fmt.Fprintf(ew, "Rows %d of %d, %s. This run: %s, %d batches, %.0f rows/s, %d retries.\n",
		r.Done, r.Total, state, r.Elapsed.Round(time.Millisecond), r.Batches, r.RowsPerSecond(), r.Retries)
	return ew.err
}
