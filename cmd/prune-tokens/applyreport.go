package main

import (
	"errors"
	"fmt"
	"io"
	"time"

	"prune-tokens/applier"
	"prune-tokens/cmd/prune-tokens/report"
	"prune-tokens/internal/atomicfile"
)

// applyReport is --report: the outcome as JSON, written whole (see
// atomicfile) when apply starts ("running") and again on every exit, so a
// scheduler never reads half a file or a stale one.
type applyReport struct {
	path, manifest string
	started        time.Time
}

func newApplyReport(path, manifest string) *applyReport {
	return &applyReport{path: path, manifest: manifest, started: time.Now()}
}

// start writes the "running" report; failing to is a refusal (exit 2), so
// that a report that cannot be written is found before anything is deleted.
func (r *applyReport) start() error {
	if r.path == "" {
		return nil
	}
	if err := r.write(report.ApplyRun{Running: true, Reason: "running"}); err != nil {
		return fmt.Errorf("--report: %w", err)
	}
	return nil
}

// finish writes the final report for an apply that ended with err (nil for
// success) and exit code.
func (r *applyReport) finish(res *applier.Result, err error, code int) error {
	if r.path == "" {
		return nil
	}
	reason := "complete"
	switch {
	case code == exitInit:
		reason = "refused"
	case errors.Is(err, applier.ErrInterrupted):
		reason = "interrupted"
	case err != nil:
		reason = "failed"
	case res != nil && !res.Complete:
		reason = "incomplete"
	}
	if werr := r.write(report.ApplyRun{Result: res, EndedAt: time.Now(), ExitCode: code, Reason: reason, Err: err}); werr != nil {
		return fmt.Errorf("--report: %w", werr)
	}
	return nil
}

func (r *applyReport) write(run report.ApplyRun) error {
	run.ToolVersion, run.Manifest, run.StartedAt = version, r.manifest, r.started
	// It names the manifest and counts accounts' rows, like the manifest.
	return atomicfile.WriteFile(r.path, 0o600, atomicfile.Options{}, func(w io.Writer) error {
		return report.ApplyJSON(w, run)
	})
}
