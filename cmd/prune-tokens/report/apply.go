package report

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"prune-tokens/applier"
)

// Apply renders the outcome of an apply (or dry run): per stage and table the
// rows planned and what became of them, where deleted + already gone +
// skipped by guard = planned for every section that was fully processed.
func Apply(w io.Writer, r *applier.Result) error {
	ew := &errWriter{w: w}
	if r.CacheOnly {
		fmt.Fprintf(ew, "\nSession cache (cache-only run): %d sessions of the manifest looked up, %s\n", r.Checked, cacheLine(r))
		return ew.err
	}
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
	if len(r.Waited) > 0 {
		reasons := make([]string, 0, len(r.Waited))
		for k := range r.Waited {
			reasons = append(reasons, k)
		}
		sort.Strings(reasons)
		parts := make([]string, len(reasons))
		for i, k := range reasons {
			parts[i] = fmt.Sprintf("%s %s", k, r.Waited[k].Round(time.Millisecond))
		}
		fmt.Fprintf(ew, "Waited between batches: %s.\n", strings.Join(parts, ", "))
	}
	if r.Throttle != "" {
		fmt.Fprintf(ew, "Throttle: %s.\n", r.Throttle)
	}
	if r.StoppedByRequest != "" {
		fmt.Fprintf(ew, "Stopped on request: %s.\n", r.StoppedByRequest)
	}
	if r.Cache != nil {
		fmt.Fprintf(ew, "Session cache: %s\n", cacheLine(r))
	}
	return ew.err
}

// cacheLine says what the Redis session-cache cleanup did.
func cacheLine(r *applier.Result) string {
	c := r.Cache
	line := fmt.Sprintf("%d entries removed from %d accounts' keys (%d keys deleted, nothing left), %d not cached", c.Removed, c.Accounts, c.KeysDeleted, c.NotCached)
	if c.Failed > 0 {
		line += fmt.Sprintf("; %d accounts NOT cleaned: rerun the same command with --redisOnly", c.Failed)
	}
	return line + "."
}
