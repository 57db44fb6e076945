package applier

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"prune-tokens/internal/logging"
	"prune-tokens/internal/metrics"
	"prune-tokens/internal/sessioncache"
	"prune-tokens/internal/throttle"
)

// Defaults, as documented in the README.
const (
	DefaultBatchSize      = 1000
	MaxBatchSize          = 10000 // past this an IN list stops being a small, bounded statement
	DefaultWait           = 500 * time.Millisecond
	DefaultMaxManifestAge = 7 * 24 * time.Hour
	DefaultLockWait       = 10 * time.Minute
	DefaultBatchTimeout   = 2 * time.Minute
	DefaultStatusEvery    = 5 * time.Second
	// statementSlack bounds small statements (lock, release) and pads
	// server-side waits.
	statementSlack = 10 * time.Second
)

// Options configure one apply. Zero means what the flag's 0 means: "none"
// for every limit an operator can turn off (Wait, MaxRuntime,
// MaxManifestAge, MaxHistoryLength, MaxBatchTime), and the default for the
// sizes and timeouts that cannot be off (BatchSize, MaxReplicaLag, LockWait,
// BatchTimeout, StatusEvery, Retry). The command line's defaults for the
// first kind are DefaultWait, DefaultMaxManifestAge and the throttle's.
type Options struct {
	DSN      *mysql.Config // parsed with dbconn.Parse
	Manifest string        // the manifest file
	// Approve is the manifest file's SHA-256 (hex) as approved; required
	// unless DryRun; when different, nothing happens.
	Approve    string
	BatchSize  int           // manifest rows per batch and transaction; 0 = DefaultBatchSize
	Wait       time.Duration // sleep between batches
	Checkpoint string        // checkpoint file; "" = Manifest + ".checkpoint"
	MaxRuntime time.Duration // stop cleanly after this long; 0 = no limit
	DryRun     bool          // classify every row with reads only; no deletes, no checkpoint
	// MaxManifestAge refuses a plan made longer ago than this; 0 = no limit.
	// (The command line defaults it to DefaultMaxManifestAge.)
	MaxManifestAge time.Duration

	Out io.Writer // what apply is about to do, resume and stop notices
	// Logger receives status lines, retries, waits and warnings; nil logs
	// plain lines to Log.
	Logger *slog.Logger
	// Events adds a record with fields at the start and the end of the run
	// (for JSON logs; the plain format has Out for that).
	Events      bool
	Log         io.Writer    // where the progress bar goes (a terminal)
	Progress    ProgressMode // a bar on Log, or status lines on Logger
	StatusEvery time.Duration

	// Metrics receives the run's events (StatsD); nil sends none.
	Metrics metrics.Sink
	// Cache, when set, removes the sessions each batch took out of the
	// database from FxA's Redis session cache. Its trouble never stops the
	// deletion; it is counted in the Result.
	Cache *sessioncache.Cleaner
	// RedisOnly deletes nothing: it removes from Cache every session of the
	// manifest that is no longer in the database (a cleanup that failed, or
	// a crash between a commit and its cleanup).
	RedisOnly bool

	// Throttling (see package throttle): checked before every batch, with
	// no transaction open. Replicas are watched for lag (worst counts;
	// HeartbeatTable reads a pt-heartbeat table instead of SHOW REPLICA
	// STATUS). MaxHistoryLength 0 does not check the history length;
	// MaxBatchTime 0 keeps the batch size fixed.
	Replicas         []*mysql.Config
	MaxReplicaLag    time.Duration
	HeartbeatTable   string
	MaxLoad          throttle.Thresholds // pause while any is exceeded
	CriticalLoad     throttle.Thresholds // stop (exit 3) when any stays exceeded
	MaxHistoryLength int64
	MaxBatchTime     time.Duration

	// Run control (see package runctl): paused while PauseFile exists;
	// stopped cleanly when StopFile appears; ControlSocket takes commands.
	PauseFile, StopFile, ControlSocket string

	// LockName is the named lock to hold; "" = LockName, FxA's. Named locks
	// are global to a server, so tests that share one give each run its own.
	LockName     string
	Retry        RetryPolicy   // zero = DefaultRetry
	LockWait     time.Duration // how long to wait for the named lock; 0 = DefaultLockWait
	BatchTimeout time.Duration // bounds each statement of a batch (the connection's read and write timeouts, plus slack, unless the DSN sets them); 0 = DefaultBatchTimeout

	// OnBatch, when set, runs after each batch is committed and its
	// checkpoint record written (its sync may still be running), with the
	// number of manifest rows done. For tests and benchmarks.
	OnBatch func(done int64)
	Now     func() time.Time // for the manifest age check; nil = time.Now

	// force makes apply take one deletion path whatever the server offers;
	// set only by this package's tests, so each path is tested on a server
	// that would choose another.
	force forcedPath

	// checkpointSync, when set, replaces the fdatasync of each checkpoint
	// record, so that a test can make the disk fail under one run without
	// touching others running in parallel.
	checkpointSync func(*os.File) error
}

// forcedPath names a deletion path a test forces.
type forcedPath int

const (
	pathChosen   forcedPath = iota // as the server and manifest decide
	pathPortable                   // deleteBatch, as on a server that refuses the fast path's statements
)

// CheckpointPath is where a manifest's checkpoint goes by default.
func CheckpointPath(manifestPath string) string { return manifestPath + ".checkpoint" }

// Validate checks the options; it is the one place they are checked, and
// the command line calls it before it opens anything. Each message names
// the option as the command line spells it.
func (o Options) Validate() error {
	switch {
	case o.DSN == nil:
		return errors.New("no database given (--dsn or PRUNE_TOKENS_DSN)")
	case o.Manifest == "":
		return errors.New("no manifest given (--manifest FILE)")
	case o.BatchSize < 0 || o.BatchSize > MaxBatchSize:
		return fmt.Errorf("--batchSize %d is out of range: want a whole number from 1 to %d", o.BatchSize, MaxBatchSize)
	case o.Wait < 0:
		return fmt.Errorf("--wait %s is negative", o.Wait)
	case o.MaxRuntime < 0:
		return fmt.Errorf("--maxRuntime %s is negative", o.MaxRuntime)
	case o.MaxManifestAge < 0:
		return fmt.Errorf("--maxManifestAge %s is negative", o.MaxManifestAge)
	case o.MaxReplicaLag < 0:
		return fmt.Errorf("--maxReplicaLag %s is negative", o.MaxReplicaLag)
	case o.MaxBatchTime < 0:
		return fmt.Errorf("--maxBatchTime %s is negative", o.MaxBatchTime)
	case o.MaxHistoryLength < 0:
		return fmt.Errorf("--maxHistoryLength %d is negative", o.MaxHistoryLength)
	case o.Checkpoint != "" && o.Checkpoint == o.Manifest:
		return fmt.Errorf("--checkpoint and --manifest name the same file %q", o.Manifest)
	case o.DryRun && (o.Checkpoint != "" || o.MaxRuntime > 0):
		return errors.New("--dryRun writes no checkpoint and reads only: it takes neither --checkpoint nor --maxRuntime")
	case o.RedisOnly && o.DryRun:
		return errors.New("--redisOnly deletes nothing from the database already: it takes no --dryRun")
	case o.RedisOnly && (o.Checkpoint != "" || o.MaxRuntime > 0):
		return errors.New("--redisOnly keeps no checkpoint and is idempotent: it takes neither --checkpoint nor --maxRuntime")
	case o.DryRun && o.Cache != nil:
		return errors.New("--dryRun deletes nothing, so it cleans no cache: it takes no --redis")
	case o.RedisOnly && o.Cache == nil:
		return errors.New("--redisOnly cleans the Redis session cache: give --redis URL (or PRUNE_TOKENS_REDIS)")
	case o.Approve == "" && !o.DryRun:
		// The trust chain starts with a person: nothing is deleted from a
		// file nobody approved, however well it verifies.
		return errors.New("apply deletes only an approved manifest: give --approve SHA256, the manifest's SHA-256 as plan printed it (a --dryRun needs none)")
	}
	if o.Approve != "" {
		a := strings.ToLower(strings.TrimSpace(o.Approve))
		if b, err := hex.DecodeString(a); err != nil || len(b) != 32 {
			return fmt.Errorf("--approve %q is not a SHA-256 (64 hex digits, as plan prints it)", o.Approve)
		}
	}
	return nil
}

// withDefaults checks the options and fills in defaults.
func (o Options) withDefaults() (Options, error) {
	if err := o.Validate(); err != nil {
		return o, err
	}
	o.Approve = strings.ToLower(strings.TrimSpace(o.Approve))
	if o.BatchSize == 0 {
		o.BatchSize = DefaultBatchSize
	}
	if o.Checkpoint == "" {
		o.Checkpoint = CheckpointPath(o.Manifest)
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.Logger == nil {
		o.Logger = logging.New(o.Log, logging.Text, logging.Options{})
	}
	if o.Metrics == nil {
		o.Metrics = metrics.Nop{}
	}
	if o.StatusEvery == 0 {
		o.StatusEvery = DefaultStatusEvery
	}
	if o.Retry == (RetryPolicy{}) {
		o.Retry = DefaultRetry
	}
	if o.LockName == "" {
		o.LockName = LockName
	}
	if o.LockWait == 0 {
		o.LockWait = DefaultLockWait
	}
	if o.BatchTimeout == 0 {
		o.BatchTimeout = DefaultBatchTimeout
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o, nil
}
