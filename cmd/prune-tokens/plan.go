package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"prune-tokens/cmd/prune-tokens/report"
	"prune-tokens/internal/dbconn"
	"prune-tokens/internal/duration"
	"prune-tokens/internal/logging"
	"prune-tokens/manifest"
	"prune-tokens/planner"
)

// Plan flag names are the old tool's, so its operators keep their habits.
const (
	flagDSN                     = "dsn"
	flagOut                     = "out"
	flagNow                     = "now"
	flagMaxTokenAge             = "maxTokenAge"
	flagMaxCodeAge              = "maxCodeAge"
	flagMaxSessions             = "maxSessions"
	flagMaxSessionsMaxAccounts  = "maxSessionsMaxAccounts"
	flagMaxSessionsMaxDeletions = "maxSessionsMaxDeletions"
	flagMaxTokenAgeWindowSize   = "maxTokenAgeWindowSize"
	flagSummary                 = "summary"
)

func planCommand() *cli.Command {
	cmd := &cli.Command{
		Name:  "plan",
		Usage: "read the database (never writes) and write a Parquet manifest of the rows to delete",
		Description: "All stages read one read-only, consistent-snapshot transaction. Durations: 30-days, \"10 days\",\n" +
			"\"1 month\" (30 days), \"1 year\" (365 days), 12h, 90m, 500ms, or a number of milliseconds; 0 turns a stage off.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: flagDSN, EnvVars: []string{"PRUNE_TOKENS_DSN"}, Usage: "go-sql-driver `DSN` user:pass@tcp(host:3306)/fxa (prefer the environment variable: it keeps the password out of the process list)"},
			&cli.StringFlag{Name: flagOut, Usage: "manifest `FILE` to write (.parquet); never overwritten"},
			&cli.StringFlag{Name: flagNow, Usage: "planning instant: milliseconds since the epoch or RFC 3339 (default: the current time)"},
			&cli.StringFlag{Name: flagMaxTokenAge, Value: "0", Usage: "token-age stage: list tokens created before now minus this `DURATION`"},
			&cli.StringFlag{Name: flagMaxCodeAge, Value: "0", Usage: "code-age stage: list unblock and signin codes created before now minus this `DURATION`"},
			&cli.StringFlag{Name: flagMaxSessions, Value: "0", Usage: "max-sessions stage: keep at most `N` sessions per account"},
			&cli.StringFlag{Name: flagMaxSessionsMaxAccounts, Value: "100", Usage: "max-sessions: trim at most `N` accounts, most sessions first"},
			&cli.StringFlag{Name: flagMaxSessionsMaxDeletions, Value: "100000", Usage: "max-sessions: list at most `N` sessions per account, oldest first"},
			&cli.StringFlag{Name: flagMaxTokenAgeWindowSize, Value: "0", Usage: "token-age: list at most `N` session tokens, oldest first (0 = no cap)"},
			&cli.StringFlag{Name: flagSummary, Usage: "also write the summary as Markdown to `FILE.md` (never overwritten)"},
			logFormatFlag(),
		},
		Action: runPlan,
	}
	cmd.Flags = append(cmd.Flags, statsdFlags()...)
	return cmd
}

// planArgs are the plan flags, checked.
type planArgs struct {
	out, summary string
	opts         planner.Options
	flags        map[string]string // as given or defaulted, for the manifest
}

func parsePlanArgs(c *cli.Context, wall time.Time) (*planArgs, error) {
	if c.NArg() > 0 {
		return nil, initErrorf("plan takes no arguments, got %q (did you mean --out %s?)", c.Args().First(), c.Args().First())
	}
	a := &planArgs{out: c.String(flagOut), summary: c.String(flagSummary), flags: map[string]string{}}
	if a.out == "" {
		return nil, initErrorf("--out is required: the manifest file to write")
	}
	if a.summary != "" && a.summary == a.out {
		return nil, initErrorf("--summary and --out name the same file %q", a.out)
	}
	for _, name := range []string{flagOut, flagSummary, flagNow, flagMaxTokenAge, flagMaxCodeAge, flagMaxSessions,
		flagMaxSessionsMaxAccounts, flagMaxSessionsMaxDeletions, flagMaxTokenAgeWindowSize} {
		a.flags[name] = c.String(name)
	}

	a.opts.Now = wall.UnixMilli()
	if v := c.String(flagNow); v != "" {
		now, err := parseNow(v)
		if err != nil {
			return nil, initErrorf("invalid --%s %q: %v", flagNow, v, err)
		}
		a.opts.Now = now
	}
	var err error
	for _, d := range []struct {
		name string
		dst  *time.Duration
	}{{flagMaxTokenAge, &a.opts.MaxTokenAge}, {flagMaxCodeAge, &a.opts.MaxCodeAge}} {
		v := c.String(d.name)
		if *d.dst, err = duration.Parse(v); err != nil {
			return nil, initErrorf("invalid --%s: %v", d.name, err)
		}
		if *d.dst > 0 && d.dst.Milliseconds() >= a.opts.Now {
			return nil, initErrorf("invalid --%s %q: it reaches back before 1970 from --now %s", d.name, v, manifest.UTC(a.opts.Now))
		}
		if *d.dst > 0 && *d.dst < time.Millisecond {
			return nil, initErrorf("invalid --%s %q: less than a millisecond, the unit of createdAt", d.name, v)
		}
	}
	for _, n := range []struct {
		name string
		dst  *int64
	}{
		{flagMaxSessions, &a.opts.MaxSessions},
		{flagMaxSessionsMaxAccounts, &a.opts.MaxSessionsMaxAccounts},
		{flagMaxSessionsMaxDeletions, &a.opts.MaxSessionsMaxDeletions},
		{flagMaxTokenAgeWindowSize, &a.opts.MaxTokenAgeWindowSize},
	} {
		v := c.String(n.name)
		if *n.dst, err = strconv.ParseInt(strings.TrimSpace(v), 10, 64); err != nil || *n.dst < 0 {
			return nil, initErrorf("invalid --%s %q: want a whole number, 0 or more", n.name, v)
		}
	}
	return a, nil
}

// parseNow reads --now: milliseconds since the epoch, or RFC 3339.
func parseNow(v string) (int64, error) {
	v = strings.TrimSpace(v)
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0, errors.New("must be after 1970-01-01")
		}
		return n, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return 0, errors.New("want milliseconds since the epoch or an RFC 3339 time such as 2026-01-02T15:04:05Z")
	}
	if ms := t.UnixMilli(); ms > 0 {
		return ms, nil
	}
	return 0, errors.New("must be after 1970-01-01")
}

// refuseExisting fails early, before connecting, when an output exists.
func refuseExisting(flag, path string) error {
	if _, err := os.Lstat(path); err == nil {
		return initErrorf("--%s %s already exists; it is never overwritten (choose a new name)", flag, path)
	} else if !errors.Is(err, os.ErrNotExist) {
		return initErrorf("--%s %s: %v", flag, path, err)
	}
	return nil
}

func runPlan(c *cli.Context) error {
	ctx := c.Context
	plannedAt := time.Now()
	ob, err := newObserver(c)
	if err != nil {
		return err
	}
	defer ob.close()
	a, err := parsePlanArgs(c, plannedAt)
	if err != nil {
		return err
	}
	a.opts.Observer = ob.sink
	for _, name := range []string{flagMaxTokenAge, flagMaxCodeAge} {
		// Accepted, as the old tool accepted it, but rarely meant.
		if meaning, ok := duration.SuspectBare(c.String(name)); ok {
			ob.log.Warn(fmt.Sprintf("prune-tokens: warning: --%s %s is %s (a bare number is milliseconds, as in the old tool)", name, c.String(name), meaning),
				logging.KeyReason, "bare number under a day")
		}
	}
	if err := refuseExisting(flagOut, a.out); err != nil {
		return err
	}
	if a.summary != "" {
		if err := refuseExisting(flagSummary, a.summary); err != nil {
			return err
		}
	}
	cfg, err := dbconn.Parse(c.String(flagDSN))
	if err != nil {
		return initError(err)
	}
	ob.secrets.Add(cfg.Passwd)
	a.flags[flagDSN] = dbconn.Redact(cfg)

	// The writer is created before connecting so that an unwritable
	// directory fails before any load on the server.
	w, err := manifest.Create(a.out)
	if err != nil {
		return initError(err)
	}
	defer w.Abort() // no-op after Commit

	db, err := dbconn.Open(ctx, cfg)
	if err != nil {
		return initError(err)
	}
	defer db.Close()
	src, err := dbconn.Describe(ctx, db, cfg)
	if err != nil {
		return initErrorf("%s: %w", dbconn.Target(cfg), err)
	}

	res, err := planner.Plan(ctx, db, a.opts, w)
	if err != nil {
		return opError(fmt.Errorf("plan against %s: %w", dbconn.Target(cfg), err))
	}
	meta, err := w.Commit(manifest.Meta{
		ToolVersion: version,
		PlannedAt:   plannedAt,
		Now:         a.opts.Now,
		TokenCutoff: res.TokenCutoff,
		CodeCutoff:  res.CodeCutoff,
		Flags:       a.flags,
		Source:      manifest.Source(src),
		TopAccounts: res.TopAccounts,
		Snapshot:    snapshotOf(res),
	})
	if err != nil {
		return opError(err)
	}
	sum, err := manifest.FileSHA256(a.out)
	if err != nil {
		return opError(err)
	}
	s := report.PlanSummary{Path: a.out, FileSHA256: sum, Meta: meta}
	if res.SnapshotFallback {
		ob.log.Warn("prune-tokens: note: the server refused START TRANSACTION WITH CONSISTENT SNAPSHOT; planned in a plain read-only transaction, so the stages may not have seen one consistent state if the database was being written",
			logging.KeyReason, "no consistent snapshot")
	}
	if ob.format == logging.JSON {
		ob.log.Info("plan finished", "manifest", a.out, "sha256", sum, logging.KeyRows, meta.RowCount)
	}
	if err := report.Plan(c.App.Writer, s, report.FormatTable); err != nil {
		return opError(err)
	}
	if a.summary != "" {
		var md bytes.Buffer
		if err := report.Plan(&md, s, report.FormatMarkdown); err != nil {
			return opError(err)
		}
		if err := writeNew(a.summary, md.Bytes()); err != nil {
			return opError(fmt.Errorf("the manifest %s is complete, but the summary was not written: %w", a.out, err))
		}
	}
	return nil
}

// writeNew writes a new file readable by the owner only; it never replaces
// an existing one and leaves nothing behind when it fails.
func writeNew(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%s already exists; it is never overwritten", path)
		}
		return fmt.Errorf("create %s: %w", path, err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// snapshotOf is how the plan read the database, for the manifest.
func snapshotOf(res *planner.Result) string {
	if res.SnapshotFallback {
		return manifest.SnapshotNone
	}
	return manifest.SnapshotConsistent
}
