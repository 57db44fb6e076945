package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"prune-tokens/applier"
	"prune-tokens/cmd/prune-tokens/report"
)

// applyReport is --report: the outcome as JSON, written whole (temporary
// file, fsync, rename) when apply starts ("running") and again on every
// exit, so a scheduler never reads half a file or a stale one.
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
	var b bytes.Buffer
	if err := report.ApplyJSON(&b, run); err != nil {
		return err
	}
	dir := filepath.Dir(r.path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(r.path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("create report in %s: %w", dir, err)
	}
	fail := func(err error) error {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	// It names the manifest and counts accounts' rows, like the manifest.
	if err := tmp.Chmod(0o600); err != nil {
		return fail(err)
	}
	if _, err := tmp.Write(b.Bytes()); err != nil {
		return fail(fmt.Errorf("write %s: %w", tmp.Name(), err))
	}
	if err := tmp.Sync(); err != nil {
		return fail(fmt.Errorf("fsync %s: %w", tmp.Name(), err))
	}
	if err := tmp.Close(); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp.Name(), r.path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write %s: %w", r.path, err)
	}
	return nil
}
