package report

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	"prune-tokens/applier"
	"prune-tokens/internal/logging"
)

// ApplyRun is what an apply report says besides the applier's Result: how
// the command ended. Result is nil when apply was refused before it started
// (or while it is still running).
type ApplyRun struct {
	ToolVersion string
	Manifest    string
	Result      *applier.Result
	Running     bool // the report written when apply starts
	StartedAt   time.Time
	EndedAt     time.Time
	ExitCode    int
	Reason      string // complete, incomplete, interrupted, refused, failed, running
	Err         error
}

// applyJSON is the report's schema; field names are part of the interface a
// scheduler reads.
type applyJSON struct {
	ToolVersion    string             `json:"tool_version"`
	Manifest       string             `json:"manifest"`
	ManifestSHA256 string             `json:"manifest_sha256,omitempty"`
	Checkpoint     string             `json:"checkpoint,omitempty"`
	Mode           string             `json:"mode"`
	State          string             `json:"state"`
	ExitCode       *int               `json:"exit_code"`
	Error          string             `json:"error,omitempty"`
	StartedAt      string             `json:"started_at"`
	EndedAt        string             `json:"ended_at,omitempty"`
	ElapsedSeconds float64            `json:"elapsed_seconds"`
	Rows           *rowsJSON          `json:"rows,omitempty"`
	Sections       []sectionJSON      `json:"sections"`
	Batches        int                `json:"batches"`
	Retries        int                `json:"retries"`
	Throttled      map[string]float64 `json:"throttled_seconds"`
	Throttle       string             `json:"throttle,omitempty"`
	StopReason     string             `json:"stop_reason,omitempty"`
	SessionCache   *cacheJSON         `json:"session_cache"`
}

type rowsJSON struct {
	Total     int64 `json:"total"`
	Done      int64 `json:"done"`
	ResumedAt int64 `json:"resumed_at"`
	Remaining int64 `json:"remaining"`
}

type sectionJSON struct {
	Stage      string `json:"stage"`
	Table      string `json:"table"`
	Planned    int64  `json:"planned"`
	Deleted    int64  `json:"deleted"`
	Gone       int64  `json:"already_gone"`
	Skipped    int64  `json:"skipped_by_guard"`
	Remaining  int64  `json:"remaining"`
	Unverified int64  `json:"unverified_tokens_deleted"`
	Devices    int64  `json:"devices_deleted"`
}

type cacheJSON struct {
	Accounts    int   `json:"accounts"`
	Removed     int   `json:"removed"`
	KeysDeleted int   `json:"keys_deleted"`
	NotCached   int   `json:"not_cached"`
	Failed      int   `json:"failed_accounts"`
	Checked     int64 `json:"sessions_checked,omitempty"`
}

// ApplyJSON writes the machine-readable outcome of an apply.
func ApplyJSON(w io.Writer, a ApplyRun) error {
	out := applyJSON{ToolVersion: a.ToolVersion, Manifest: a.Manifest, Mode: "apply", State: a.Reason,
		StartedAt: a.StartedAt.UTC().Format(time.RFC3339Nano), Sections: []sectionJSON{}, Throttled: map[string]float64{}}
	if !a.Running {
		code := a.ExitCode
		out.ExitCode = &code
		out.EndedAt = a.EndedAt.UTC().Format(time.RFC3339Nano)
		out.ElapsedSeconds = a.EndedAt.Sub(a.StartedAt).Seconds()
	}
	if a.Err != nil {
		out.Error = logging.OneLine(a.Err.Error())
	}
	if r := a.Result; r != nil {
		out.ManifestSHA256, out.Checkpoint = r.FileSHA256, r.Checkpoint
		switch {
		case r.DryRun:
			out.Mode = "dry-run"
		case r.CacheOnly:
			out.Mode = "redis-only"
		}
		out.Rows = &rowsJSON{Total: r.Total, Done: r.Done, ResumedAt: r.ResumedAt, Remaining: r.Total - r.Done}
		for _, s := range r.Sections {
			out.Sections = append(out.Sections, sectionJSON{Stage: s.Section.Stage, Table: s.Section.Table, Planned: s.Planned,
				Deleted: s.Deleted, Gone: s.Gone, Skipped: s.Skipped, Remaining: s.Planned - s.Processed(),
				Unverified: s.Unverified, Devices: s.Devices})
		}
		out.Batches, out.Retries, out.Throttle = r.Batches, r.Retries, r.Throttle
		switch {
		case r.StoppedByTime:
			out.StopReason = "max runtime reached"
		case r.StoppedByRequest != "":
			out.StopReason = r.StoppedByRequest
		}
		for reason, d := range r.Waited {
			out.Throttled[reason] = d.Seconds()
		}
		if c := r.Cache; c != nil {
			out.SessionCache = &cacheJSON{Accounts: c.Accounts, Removed: c.Removed, KeysDeleted: c.KeysDeleted,
				NotCached: c.NotCached, Failed: c.Failed, Checked: r.Checked}
		}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}
