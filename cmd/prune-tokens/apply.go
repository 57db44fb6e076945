package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"prune-tokens/applier"
	"prune-tokens/cmd/prune-tokens/report"
	"prune-tokens/internal/dbconn"
	"prune-tokens/internal/duration"
	"prune-tokens/internal/logging"
	"prune-tokens/internal/sessioncache"
	"prune-tokens/internal/throttle"
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
	afLockWait       = "lockWait"
	afDryRun         = "dryRun"
	afMaxManifestAge = "maxManifestAge"
	afReplica        = "replica"
	afMaxReplicaLag  = "maxReplicaLag"
	afHeartbeat      = "heartbeatTable"
	afMaxLoad        = "maxLoad"
	afCriticalLoad   = "criticalLoad"
	afMaxHistory     = "maxHistoryLength"
	afMaxBatchTime   = "maxBatchTime"
	afPauseFile      = "pauseFile"
	afStopFile       = "stopFile"
	afControlSocket  = "controlSocket"
	afRedis          = "redis"
	afRedisPrefix    = "redisKeyPrefix"
	afRedisOnly      = "redisOnly"
	afReport         = "report"
)

// envReplicas holds the replicas' DSNs, separated by spaces.
const envReplicas = "PRUNE_TOKENS_REPLICAS"

func applyCommand() *cli.Command {
	cmd := &cli.Command{
		Name:  "apply",
		Usage: "delete exactly the rows of an approved manifest, in throttled, checkpointed, resumable batches",
		Description: "Verifies the whole manifest first (refused: exit 2, nothing deleted). Each batch is one transaction over\n" +
			"consecutive rows of one stage and table, deleted by primary key and only if still as planned, while holding\n" +
			"the named lock " + applier.LockName + ". Progress is recorded after every batch; rerunning the same\n" +
			"command resumes. Durations: 500ms, 2s, 90m, 12h, \"7 days\", or a number of milliseconds.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: afDSN, EnvVars: []string{"PRUNE_TOKENS_DSN"}, Usage: "go-sql-driver `DSN` user:pass@tcp(host:3306)/fxa (prefer the environment variable: it keeps the password out of the process list)"},
			&cli.StringFlag{Name: afManifest, Usage: "manifest `FILE` written by plan"},
			&cli.StringFlag{Name: afApprove, Usage: "the manifest file's approved `SHA256` as plan printed it; required (but by --dryRun); apply refuses a file that differs"},
			&cli.StringFlag{Name: afBatchSize, Aliases: []string{afBatchSizeOld}, Value: strconv.Itoa(applier.DefaultBatchSize), Usage: "manifest rows per batch (one transaction, one table), `N` from 1 to " + strconv.Itoa(applier.MaxBatchSize)},
			&cli.StringFlag{Name: afWait, Value: duration.Format(applier.DefaultWait), Usage: "sleep `DURATION` between batches"},
			&cli.StringFlag{Name: afCheckpoint, Usage: "checkpoint `FILE` (default: the manifest's name + .checkpoint)"},
			&cli.StringFlag{Name: afMaxRuntime, Value: "0", Usage: "stop cleanly after `DURATION` (0 = no limit); rerun to continue"},
			&cli.StringFlag{Name: afLockWait, Value: duration.Format(applier.DefaultLockWait), Usage: "wait up to `DURATION` for the named lock " + applier.LockName + " another apply holds, then exit 3 (rerun to continue)"},
			&cli.BoolFlag{Name: afDryRun, Usage: "verify, connect and report what would be deleted, already gone or skipped; delete nothing"},
			&cli.StringFlag{Name: afMaxManifestAge, Value: duration.Format(applier.DefaultMaxManifestAge), Usage: "refuse a manifest planned longer ago than `DURATION` (0 = no limit)"},
			&cli.StringSliceFlag{Name: afReplica, EnvVars: []string{envReplicas}, Usage: "watch the replica at `DSN` for lag (repeat the flag; in the environment, separate them with spaces); the worst counts"},
			&cli.StringFlag{Name: afMaxReplicaLag, Value: duration.Format(throttle.DefaultMaxReplicaLag), Usage: "hold apply while a replica lags more than `DURATION`, or cannot be read"},
			&cli.StringFlag{Name: afHeartbeat, Usage: "read lag from a pt-heartbeat `DB.TABLE` on each replica (sub-second) instead of SHOW REPLICA STATUS"},
			&cli.StringSliceFlag{Name: afMaxLoad, Usage: "hold apply while a global status variable is above a limit: `VAR=N[,VAR=N]`, e.g. Threads_running=25"},
			&cli.StringSliceFlag{Name: afCriticalLoad, Usage: "stop apply (exit 3, resumable) when a global status variable stays above a limit for a second: `VAR=N[,VAR=N]`"},
			&cli.StringFlag{Name: afMaxHistory, Value: strconv.Itoa(throttle.DefaultMaxHistoryLength), Usage: "hold apply while InnoDB's history list length is above `N` (until below 80% of it); 0 = do not check"},
			&cli.StringFlag{Name: afMaxBatchTime, Value: duration.Format(throttle.DefaultMaxBatchTime), Usage: "halve the batch size after a batch longer than `DURATION`, grow it back when well under; 0 = fixed batch size"},
			&cli.StringFlag{Name: afPauseFile, Usage: "hold apply while `FILE` exists"},
			&cli.StringFlag{Name: afStopFile, Usage: "when `FILE` appears, finish the batch and stop cleanly (exit 0, rerun to continue)"},
			&cli.StringFlag{Name: afControlSocket, Usage: "take commands on the unix socket `PATH` (mode 0600): status, pause, resume, stop, batch-size=N, wait=D, max-replica-lag=D, max-load=..."},
			&cli.StringFlag{Name: afRedis, EnvVars: []string{"PRUNE_TOKENS_REDIS"}, Usage: "remove deleted sessions from FxA's Redis session cache at `URL` redis://[:password@]host:6379/0 (rediss:// for TLS)"},
			&cli.StringFlag{Name: afRedisPrefix, Value: sessioncache.DefaultKeyPrefix, Usage: "the session cache's key `PREFIX` (followed by the uid in hex)"},
			&cli.BoolFlag{Name: afRedisOnly, Usage: "delete nothing: remove from the session cache every session of the manifest no longer in the database (after a cleanup failed)"},
			&cli.StringFlag{Name: afReport, Usage: "write the outcome as JSON to `FILE.json`, whole, on every exit (also while running: \"running\")"},
			logFormatFlag(),
		},
		Action: runApply,
	}
	cmd.Flags = append(cmd.Flags, statsdFlags()...)
	return cmd
}

// parseThrottleArgs reads the throttling and run-control flags.
func parseThrottleArgs(c *cli.Context, o *applier.Options) error {
	dsns := c.StringSlice(afReplica)
	if env := os.Getenv(envReplicas); len(dsns) == 1 && dsns[0] == env {
		// From the environment, one variable: the DSNs separated by spaces.
		dsns = strings.Fields(env)
	}
	for _, dsn := range dsns {
		cfg, err := dbconn.ParseServer(strings.TrimSpace(dsn))
		if err != nil {
			return initErrorf("invalid --%s: %v", afReplica, err)
		}
		o.Replicas = append(o.Replicas, cfg)
	}
	var err error
	if o.MaxReplicaLag, err = duration.Parse(c.String(afMaxReplicaLag)); err != nil || o.MaxReplicaLag <= 0 {
		return initErrorf("invalid --%s %q: want a duration above 0, such as 1s or 500ms", afMaxReplicaLag, c.String(afMaxReplicaLag))
	}
	o.HeartbeatTable = strings.TrimSpace(c.String(afHeartbeat))
	if c.IsSet(afHeartbeat) && len(o.Replicas) == 0 {
		return initErrorf("--%s reads lag on the replicas: give them with --%s", afHeartbeat, afReplica)
	}
	for _, f := range []struct {
		name string
		dst  *throttle.Thresholds
	}{{afMaxLoad, &o.MaxLoad}, {afCriticalLoad, &o.CriticalLoad}} {
		spec := strings.Join(c.StringSlice(f.name), ",")
		if *f.dst, err = throttle.ParseThresholds(spec); err != nil {
			return initErrorf("invalid --%s: %v", f.name, err)
		}
	}
	v := strings.TrimSpace(c.String(afMaxHistory))
	if o.MaxHistoryLength, err = strconv.ParseInt(v, 10, 64); err != nil || o.MaxHistoryLength < 0 {
		return initErrorf("invalid --%s %q: want a whole number, 0 to not check", afMaxHistory, v)
	}
	if o.MaxBatchTime, err = duration.Parse(c.String(afMaxBatchTime)); err != nil {
		return initErrorf("invalid --%s: %v", afMaxBatchTime, err)
	}
	o.PauseFile, o.StopFile, o.ControlSocket = c.String(afPauseFile), c.String(afStopFile), c.String(afControlSocket)
	files := map[string]string{}
	for _, f := range [][2]string{{afPauseFile, o.PauseFile}, {afStopFile, o.StopFile}, {afControlSocket, o.ControlSocket}, {afManifest, o.Manifest}} {
		if f[1] == "" {
			continue
		}
		if other, dup := files[f[1]]; dup {
			return initErrorf("--%s and --%s name the same file %q", other, f[0], f[1])
		}
		files[f[1]] = f[0]
	}
	return nil
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
	if err != nil || n < 1 {
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
	if o.LockWait, err = duration.Parse(c.String(afLockWait)); err != nil || o.LockWait <= 0 {
		return o, initErrorf("invalid --%s %q: want a duration above 0, such as 10m", afLockWait, c.String(afLockWait))
	}
	o.Checkpoint = c.String(afCheckpoint)
	if c.IsSet(afCheckpoint) && o.Checkpoint == "" {
		return o, initErrorf("--checkpoint is empty")
	}
	o.DryRun = c.Bool(afDryRun)
	if err := parseThrottleArgs(c, &o); err != nil {
		return o, err
	}
	o.RedisOnly = c.Bool(afRedisOnly)
	if u := c.String(afRedis); u != "" {
		// Open only parses the URL and connects at first use, so Validate
		// sees the cache before anything is opened.
		cache, err := sessioncache.Open(sessioncache.Options{URL: u, KeyPrefix: c.String(afRedisPrefix)})
		if err != nil {
			return o, initErrorf("--redis %s: %v", sessioncache.Redact(u), err)
		}
		o.Cache = cache
	}
	if r := c.String(afReport); c.IsSet(afReport) && (r == "" || r == o.Manifest || r == o.Checkpoint) {
		return o, initErrorf("--report %q: give a file of its own", r)
	}
	if err := o.Validate(); err != nil {
		return o, initError(err)
	}
	return o, nil
}

func runApply(c *cli.Context) (err error) {
	ob, err := newObserver(c)
	if err != nil {
		return err
	}
	defer ob.close()
	rep := newApplyReport(c.String(afReport), c.String(afManifest))
	var res *applier.Result
	// Whatever happens from here, metrics hear of the end and the report
	// is written whole.
	defer func() {
		ob.sink.RunEnd(err)
		if werr := rep.finish(res, err, exitCode(err)); werr != nil && err == nil {
			err = opError(werr)
		}
	}()
	o, err := parseApplyArgs(c)
	if o.Cache != nil {
		defer o.Cache.Close()
	}
	if err != nil {
		return err
	}
	ob.secrets.Add(o.DSN.Passwd)
	for _, r := range o.Replicas {
		ob.secrets.Add(r.Passwd)
	}
	if err := rep.start(); err != nil {
		return initError(err)
	}
	o.Out = c.App.Writer
	o.Log = c.App.ErrWriter
	o.Logger = ob.log
	o.Events = ob.format == logging.JSON
	o.Metrics = ob.sink
	if ob.format == logging.JSON {
		o.Progress = applier.ProgressLines // a bar is no JSON
	}
	res, err = applier.Run(c.Context, o)
	if res != nil {
		if rerr := report.Apply(c.App.Writer, res); rerr != nil && err == nil {
			err = rerr
		}
		if res.Cache != nil && res.Cache.Failed > 0 && err == nil && !res.CacheOnly {
			ob.log.Warn(fmt.Sprintf("prune-tokens: warning: the session cache kept %d accounts' entries of deleted sessions; clean them with the same command plus --redisOnly", res.Cache.Failed),
				"failed", res.Cache.Failed)
		}
	}
	if applier.IsInit(err) {
		return initError(err)
	}
	// Everything else happened while deleting, interruptions included;
	// the checkpoint is current, so the rerun resumes.
	return opError(err)
}
