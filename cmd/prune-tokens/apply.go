package main

import (
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"prune-tokens/applier"
	"prune-tokens/internal/dbconn"
	"prune-tokens/internal/duration"
	"prune-tokens/internal/report"
)

// apply flag names; --maxSessionsBatchSize is the old tool's name for the
// batch size, kept as an alias.
const (
	afDSN            = "dsn"
	afManifest       = "manifest"
	afApprove        = "approve"
	afBatchSize      = "batchSize"
	afBatchSizeOld   = "maxSessionsBatchSize"
	afWait           = "wait"
	afCheckpoint     = "checkpoint"
	afMaxRuntime     = "maxRuntime"
	afDryRun         = "dryRun"
	afMaxManifestAge = "maxManifestAge"
)

func applyCommand() *cli.Command {
	return &cli.Command{
		Name:  "apply",
		Usage: "delete exactly the rows of an approved manifest, in throttled, checkpointed, resumable batches",
		Description: "Verifies the whole manifest first (refused: exit 2, nothing deleted). Each batch is one transaction over\n" +
			"consecutive rows of one stage and table, deleted by primary key and only if still as planned, while holding\n" +
			"the named lock " + applier.LockName + ". Progress is recorded after every batch; rerunning the same\n" +
			"command resumes. Durations: 500ms, 2s, 90m, 12h, \"7 days\", or a number of milliseconds.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: afDSN, EnvVars: []string{"PRUNE_TOKENS_DSN"}, Usage: "go-sql-driver `DSN` user:pass@tcp(host:3306)/fxa (prefer the environment variable: it keeps the password out of the process list)"},
			&cli.StringFlag{Name: afManifest, Usage: "manifest `FILE` written by plan"},
			&cli.StringFlag{Name: afApprove, Usage: "the manifest file's approved `SHA256` as plan printed it; apply refuses a file that differs"},
			&cli.StringFlag{Name: afBatchSize, Aliases: []string{afBatchSizeOld}, Value: strconv.Itoa(applier.DefaultBatchSize), Usage: "manifest rows per batch (one transaction, one table), `N` from 1 to " + strconv.Itoa(applier.MaxBatchSize)},
			&cli.StringFlag{Name: afWait, Value: "500ms", Usage: "sleep `DURATION` between batches"},
			&cli.StringFlag{Name: afCheckpoint, Usage: "checkpoint `FILE` (default: the manifest's name + .checkpoint)"},
			&cli.StringFlag{Name: afMaxRuntime, Value: "0", Usage: "stop cleanly after `DURATION` (0 = no limit); rerun to continue"},
			&cli.BoolFlag{Name: afDryRun, Usage: "verify, connect and report what would be deleted, already gone or skipped; delete nothing"},
			&cli.StringFlag{Name: afMaxManifestAge, Value: "7 days", Usage: "refuse a manifest planned longer ago than `DURATION` (0 = no limit)"},
		},
		Action: runApply,
	}
}

// parseApplyArgs checks every flag before anything is opened.
func parseApplyArgs(c *cli.Context) (applier.Options, error) {
	var o applier.Options
	if c.NArg() > 0 {
		return o, initErrorf("apply takes no arguments, got %q (did you mean --manifest %s?)", c.Args().First(), c.Args().First())
	}
	o.Manifest = c.String(afManifest)
	if o.Manifest == "" {
		return o, initErrorf("--manifest is required: the manifest file written by plan")
	}
	cfg, err := dbconn.Parse(c.String(afDSN))
	if err != nil {
		return o, initError(err)
	}
	o.DSN = cfg
	o.Approve = strings.TrimSpace(c.String(afApprove))
	if c.IsSet(afApprove) && o.Approve == "" {
		return o, initErrorf("--approve is empty: give the manifest's SHA-256 as plan printed it")
	}
	v := c.String(afBatchSize)
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 1 || n > applier.MaxBatchSize {
		return o, initErrorf("invalid --%s %q: want a whole number from 1 to %d", afBatchSize, v, applier.MaxBatchSize)
	}
	o.BatchSize = n
	for _, d := range []struct {
		name string
		dst  *time.Duration
	}{{afWait, &o.Wait}, {afMaxRuntime, &o.MaxRuntime}, {afMaxManifestAge, &o.MaxManifestAge}} {
		if *d.dst, err = duration.Parse(c.String(d.name)); err != nil {
			return o, initErrorf("invalid --%s: %v", d.name, err)
		}
	}
	o.Checkpoint = c.String(afCheckpoint)
	if c.IsSet(afCheckpoint) && o.Checkpoint == "" {
		return o, initErrorf("--checkpoint is empty")
	}
	if o.Checkpoint != "" && o.Checkpoint == o.Manifest {
		return o, initErrorf("--checkpoint and --manifest name the same file %q", o.Manifest)
	}
	o.DryRun = c.Bool(afDryRun)
	if o.DryRun && (c.IsSet(afCheckpoint) || c.IsSet(afMaxRuntime)) {
		return o, initErrorf("--dryRun writes no checkpoint and reads only: it takes neither --checkpoint nor --maxRuntime")
	}
	return o, nil
}

// lockWait is how long apply waits for the named lock; zero is the
// applier's default, as the README documents. Tests shorten it.
var lockWait time.Duration

func runApply(c *cli.Context) error {
	o, err := parseApplyArgs(c)
	if err != nil {
		return err
	}
	o.LockWait = lockWait
	o.Out = c.App.Writer
	o.Log = c.App.ErrWriter
	res, err := applier.Run(c.Context, o)
	if res != nil {
		if rerr := report.Apply(c.App.Writer, res); rerr != nil && err == nil {
			err = rerr
		}
	}
	if applier.IsInit(err) {
		return initError(err)
	}
	// Everything else happened while deleting, interruptions included;
	// the checkpoint is current, so the rerun resumes.
	return opError(err)
}
