// Package applier deletes exactly the rows of a verified, approved manifest:
// in batches of one section each, one transaction per batch, by primary key,
// each row only if it still matches the plan, holding FxA's named prune lock,
// recording progress in a checkpoint after every commit so that a stopped or
// killed run resumes where it left off.
package applier

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"prune-tokens/internal/backoff"
	"prune-tokens/internal/dbconn"
	"prune-tokens/internal/logging"
	"prune-tokens/internal/metrics"
	"prune-tokens/internal/sessioncache"
	"prune-tokens/internal/throttle"
	"prune-tokens/manifest"
)

// ErrInterrupted says the context was cancelled (SIGINT/SIGTERM): the batch
// in flight was finished or rolled back and the checkpoint is current.
var ErrInterrupted = errors.New("interrupted")

// initErr marks errors found before anything was deleted.
type initErr struct{ err error }

func (e *initErr) Error() string { return e.err.Error() }
func (e *initErr) Unwrap() error { return e.err }

func initErrorf(format string, args ...any) error {
	return &initErr{fmt.Errorf(format, args...)}
}

// IsInit says whether err was found before apply started deleting (bad
// options or manifest, refused approval or checkpoint, database unreachable):
// nothing was deleted. Any other error from Run happened during the deletion.
func IsInit(err error) bool {
	var ie *initErr
	return errors.As(err, &ie)
}

// SectionResult is the outcome of one (stage, table) of the manifest.
type SectionResult struct {
	Section manifest.Section
	Planned int64
	Counts
}

// Result describes an apply (or a dry run), over the whole manifest: rows
// done by earlier, resumed runs included.
type Result struct {
	Manifest   string
	FileSHA256 string
	Checkpoint string // "" in a dry run
	DryRun     bool

	Total     int64 // rows in the manifest
	Done      int64 // rows processed, earlier runs included
	ResumedAt int64 // row this run started at
	Sections  []SectionResult

	Complete        bool // every row processed
	AlreadyComplete bool // the checkpoint said so before this run started
	StoppedByTime   bool // --maxRuntime ended the run early
	// StoppedByRequest says why an operator stopped the run early (stop
	// file, control socket); "" when none did.
	StoppedByRequest string
	// Throttle is how the throttler's limits held apply ("never
	// throttled", or the time per reason); "" without a throttler (dry run).
	Throttle string

	StartedAt time.Time     // when this run started (Run was called)
	Elapsed   time.Duration // this run, from the first batch
	Batches   int           // batches this run
	Retries   int           // batches retried after transient errors
	// Waited is the time this run spent waiting before batches, by reason
	// ("wait": --wait).
	Waited map[string]time.Duration

	// Cache is what the Redis session-cache cleanup did this run; nil when
	// no cache was given.
	Cache *sessioncache.Result
	// CacheOnly says the run only cleaned the cache (RedisOnly); then
	// Checked counts the manifest's sessions it looked up.
	CacheOnly bool
	Checked   int64
}

// Totals adds up the sections.
func (r *Result) Totals() (planned int64, c Counts) {
	for _, s := range r.Sections {
		planned += s.Planned
		c.add(s.Counts)
	}
	return planned, c
}

// RowsPerSecond is this run's rate.
func (r *Result) RowsPerSecond() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Done-r.ResumedAt) / r.Elapsed.Seconds()
}

func (r *Result) fill(m *manifest.Meta, st *State) {
	r.Total, r.Done = st.Total, st.Next
	r.Complete = st.Complete()
	r.Sections = r.Sections[:0]
	for i, sec := range manifest.Sections() {
		if n := m.Count(sec); n > 0 {
			r.Sections = append(r.Sections, SectionResult{Section: sec, Planned: n, Counts: st.Sections[i]})
		}
	}
}

// run is the state of one apply.
type run struct {
	o     Options
	db    *sql.DB
	conn  *sql.Conn // pinned connection holding the named lock
	prog  *progress
	res   *Result
	cp    *Checkpoint // nil in a dry run
	start time.Time
	// deadline is when MaxRuntime ends the run; zero without a limit.
	deadline time.Time
	// fast says the server runs deleteBatchFast's statements; otherwise
	// each batch sends them one at a time (deleteBatch).
	fast bool
	// gov throttles and takes the operator's commands; nil in a dry run.
	gov *governor
	// keep is how many newer sessions a max-sessions session's account
	// must keep for it to go (rankAtDelete).
	keep keepRule
}

// errOutOfTime says MaxRuntime passed while waiting for the named lock.
var errOutOfTime = errors.New("max runtime reached")

// Run verifies the manifest and, unless it is refused, deletes its rows (or,
// with DryRun, classifies them). The Result is returned even with an error,
// describing what was done. Errors for which IsInit is true come before the
// first delete.
func Run(ctx context.Context, opts Options) (*Result, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, &initErr{err}
	}
	res := &Result{Manifest: o.Manifest, DryRun: o.DryRun, StartedAt: time.Now(), Waited: map[string]time.Duration{}, CacheOnly: o.RedisOnly}
	if o.Cache != nil {
		res.Cache = &sessioncache.Result{}
	}

	// Everything about the manifest is settled before the database is
	// touched: a refused manifest costs nothing. Open comes first (it
	// refuses what is not a regular file, such as a FIFO that would block
	// any read); the file is hashed before and after its rows are verified,
	// so the bytes approved are the bytes verified and then applied (from
	// the same open file).
	mr, err := manifest.Open(o.Manifest)
	if err != nil {
		return nil, initErrorf("manifest %s refused: %w", o.Manifest, err)
	}
	defer mr.Close()
	if res.FileSHA256, err = mr.SHA256(); err != nil {
		return nil, initErrorf("manifest %s refused: %w", o.Manifest, err)
	}
	if err := mr.Verify(); err != nil {
		return nil, initErrorf("manifest %s refused: %w", o.Manifest, err)
	}
	meta := mr.Meta()
	if err := mr.CheckUnchanged(); err != nil {
		return nil, initErrorf("manifest %s refused: %w", o.Manifest, err)
	}
	if o.Approve != "" && o.Approve != res.FileSHA256 {
		return nil, initErrorf("manifest %s has SHA-256 %s, not the approved %s: refusing to apply a manifest that was not approved", o.Manifest, res.FileSHA256, o.Approve)
	}
	if age := o.Now().Sub(meta.PlannedAt); o.MaxManifestAge > 0 && age > o.MaxManifestAge {
		return nil, initErrorf("manifest %s was planned %s ago (at %s), more than --maxManifestAge %s: the reviewed picture is stale; plan again, or raise --maxManifestAge",
			o.Manifest, age.Round(time.Minute), meta.PlannedAt.UTC().Format(time.RFC3339), o.MaxManifestAge)
	}

	st := newState(meta, res.FileSHA256)
	resumed := false
	var cp *Checkpoint
	if !o.DryRun && !o.RedisOnly {
		res.Checkpoint = o.Checkpoint
		if cp, resumed, err = openCheckpoint(o.Checkpoint, meta, res.FileSHA256); err != nil {
			return nil, &initErr{err}
		}
		if o.checkpointSync != nil {
			cp.sync = o.checkpointSync
		}
		defer cp.Close()
		st = cp.State
	}
	res.ResumedAt = st.Next
	res.fill(meta, st)

	cfg := o.DSN.Clone()
	// A batch sends several statements in one round trip (deleteBatchFast);
	// every value is still interpolated by the driver, escaped.
	cfg.MultiStatements = true
	// Bounds for every read and write on the wire, so a server that
	// vanishes without closing the connection cannot hang apply.
	if cfg.ReadTimeout == 0 {
		cfg.ReadTimeout = o.BatchTimeout + statementSlack
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = o.BatchTimeout + statementSlack
	}
	db, err := dbconn.Open(ctx, cfg)
	if err != nil {
		return nil, &initErr{err}
	}
	defer db.Close()
	dctx, cancel := context.WithTimeout(ctx, cfg.Timeout+statementSlack)
	server, err := dbconn.Describe(dctx, db, cfg)
	target := manifest.Source(server)
	cancel()
	if err != nil {
		return nil, initErrorf("%s: %w", dbconn.Target(cfg), err)
	}
	printHeader(o, meta, res, dbconn.Redact(o.DSN), target)
	if o.RedisOnly {
		res.Total = meta.RowCount
		err := sweepCache(ctx, db, mr, o, res)
		res.Elapsed = time.Since(res.StartedAt)
		return res, err
	}

	if st.Complete() {
		res.AlreadyComplete = true
		if st.Total == 0 {
			fmt.Fprintln(o.Out, "the manifest lists no rows: nothing to do")
		} else {
			fmt.Fprintf(o.Out, "manifest already applied completely (checkpoint %s): nothing to do\n", o.Checkpoint)
		}
		return res, nil
	}
	var remaining []manifest.Section
	for i, sec := range manifest.Sections() {
		if st.Sections[i].Processed() < meta.Count(sec) {
			remaining = append(remaining, sec)
		}
	}
	pctx, cancel := context.WithTimeout(ctx, cfg.Timeout+statementSlack)
	err = preflight(pctx, db, remaining)
	if err == nil && !o.DryRun {
		err = preflightIsolation(pctx, db)
	}
	cancel()
	if err != nil && o.DryRun {
		fmt.Fprintf(o.Out, "warning     %v\n", err)
	} else if err != nil {
		return nil, &initErr{err}
	}
	// A checkpoint left at row 0 (say, the database was unreachable last
	// time) is a fresh start.
	if resumed && st.Next > 0 {
		fmt.Fprintf(o.Out, "resuming at row %d of %d (checkpoint %s)\n", st.Next, st.Total, o.Checkpoint)
	}

	verb := "apply"
	if o.DryRun {
		verb = "dry run"
	}
	r := &run{o: o, db: db, res: res, cp: cp, start: time.Now(), fast: o.force != pathPortable, keep: keepRuleOf(meta),
		prog: newProgress(o.Logger, o.Log, o.Progress, o.StatusEvery, verb, st.Next, st.Total)}
	if server.IsSandbox() && r.fast && !o.DryRun {
		// go-mysql-server refuses the fast path's statements (several in
		// one round trip, a multi-table DELETE) with an error that reads as
		// a failure; the portable path is the same deletion.
		r.fast = false
		fmt.Fprintf(o.Out, "note        the sandbox server runs no multi-statement batches: each batch sends its statements one at a time\n")
	}
	if !o.DryRun {
		log := func(format string, args ...any) { r.prog.info(fmt.Sprintf(format, args...)) }
		if r.gov, err = newGovernor(ctx, o, db, log, r.prog.latest); err != nil {
			return nil, &initErr{err}
		}
		defer r.gov.close()
		r.prog.extra = r.gov.statusParts
		fmt.Fprintf(o.Out, "throttle    %s\n", r.gov.describe(o))
		if ctl := describeControl(o); ctl != "" {
			fmt.Fprintf(o.Out, "control     %s\n", ctl)
		}
		o.Metrics.RunStart()
	}
	if o.Events {
		o.Logger.Info(verb+" started", "manifest", o.Manifest, "sha256", res.FileSHA256, "target", dbconn.Redact(o.DSN),
			logging.KeyRows, st.Next, logging.KeyTotal, st.Total, "batch_size", o.BatchSize, "wait", o.Wait)
	}
	err = r.loop(ctx, mr, st)
	if cp != nil {
		// However the loop ended, the last record is on disk before apply
		// says anything more.
		if werr := cp.Wait(); werr != nil && err == nil {
			err = fmt.Errorf("cannot record progress of the last batch: %w (it was committed; a rerun redoes it harmlessly)", werr)
		}
	}
	r.prog.finish()
	r.close()
	res.Elapsed = time.Since(r.start)
	res.fill(meta, st)
	if r.gov != nil {
		for reason, d := range r.gov.newlySpent() {
			r.waited(reason, d)
		}
		res.Throttle = r.gov.thr.Status().Spent()
	}
	if o.Events {
		_, tot := res.Totals()
		attrs := []any{logging.KeyRows, res.Done, logging.KeyTotal, res.Total, "complete", res.Complete,
			logging.KeyDeleted, tot.Deleted, logging.KeyGone, tot.Gone, logging.KeySkipped, tot.Skipped,
			"batches", res.Batches, "retries", res.Retries, "elapsed", res.Elapsed}
		if err != nil {
			attrs = append(attrs, logging.KeyError, err.Error())
		}
		o.Logger.Info(verb+" finished", attrs...)
	}
	return res, err
}

func printHeader(o Options, m *manifest.Meta, res *Result, target string, t manifest.Source) {
	w := o.Out
	approval := "matches --approve"
	if o.Approve == "" {
		approval = "none needed: a dry run deletes nothing"
	}
	var counts []string
	for _, s := range m.Stats {
		counts = append(counts, fmt.Sprintf("%s/%s %d", s.Stage, s.Table, s.Rows))
	}
	if len(counts) == 0 {
		counts = []string{"none"}
	}
	fmt.Fprintf(w, "manifest    %s\n", o.Manifest)
	fmt.Fprintf(w, "  sha256    %s (%s)\n", res.FileSHA256, approval)
	fmt.Fprintf(w, "  planned   %s by prune-tokens %s\n", m.PlannedAt.UTC().Format(time.RFC3339), m.ToolVersion)
	fmt.Fprintf(w, "  source    %s\n", m.Source)
	fmt.Fprintf(w, "  read      %s\n", m.SnapshotText())
	fmt.Fprintf(w, "  rows      %d: %s\n", m.RowCount, strings.Join(counts, ", "))
	fmt.Fprintf(w, "target      %s (server %s, server_id %d)\n", target, t.ServerVersion, t.ServerID)
	if t.Database != m.Source.Database {
		fmt.Fprintf(w, "  note      the target database %q is not the plan's source database %q\n", t.Database, m.Source.Database)
	}
	if o.DryRun {
		fmt.Fprintf(w, "dry run     reads only: nothing is deleted, no checkpoint is written\n")
		return
	}
	fmt.Fprintf(w, "checkpoint  %s\n", o.Checkpoint)
	limit := "none"
	if o.MaxRuntime > 0 {
		limit = o.MaxRuntime.String()
	}
	fmt.Fprintf(w, "batches     up to %d rows each, %s apart; max runtime %s\n", o.BatchSize, o.Wait, limit)
}

// loop runs the batches from st.Next to the end, or until the context ends
// or MaxRuntime passes.
func (r *run) loop(ctx context.Context, mr *manifest.Reader, st *State) error {
	o := r.o
	if o.MaxRuntime > 0 {
		r.deadline = r.start.Add(o.MaxRuntime)
	}
	deadline := r.deadline
	it := mr.RowsAhead(st.Next)
	defer it.Close()
	// carry holds rows read but not yet in a batch: the first row of the
	// next section, or rows left over when the batch size shrank.
	var carry []manifest.Row
	var batch []manifest.Row
	for {
		size := o.BatchSize
		if r.gov != nil {
			size = r.gov.thr.BatchSize()
		}
		// A batch is consecutive rows of one section.
		batch = batch[:0]
		for len(carry) > 0 && len(batch) < size && (len(batch) == 0 || carry[0].Section() == batch[0].Section()) {
			batch = append(batch, carry[0])
			carry = carry[1:]
		}
		for len(carry) == 0 && len(batch) < size {
			row, ok := it.Next()
			if !ok {
				break
			}
			if len(batch) > 0 && row.Section() != batch[0].Section() {
				carry = append(carry, row)
				break
			}
			batch = append(batch, row)
		}
		if err := it.Err(); err != nil {
			if errors.Is(err, manifest.ErrChanged) {
				return &initErr{fmt.Errorf("manifest %s refused at row %d: %w; nothing of the changed part was deleted", o.Manifest, it.Index(), err)}
			}
			return fmt.Errorf("read manifest at row %d (was the file changed during apply?): %w", it.Index(), err)
		}
		if len(batch) == 0 {
			if r.cp != nil {
				if err := r.cp.Wait(); err != nil {
					return fmt.Errorf("cannot record progress of the last batch: %w (it was committed; a rerun redoes it harmlessly)", err)
				}
			}
			if !o.DryRun {
				fmt.Fprintf(o.Out, "done: all %d rows of the manifest processed\n", st.Total)
			}
			return nil
		}
		if ctx.Err() != nil {
			return r.interrupted(st)
		}
		if !deadline.IsZero() && !time.Now().Before(deadline) {
			return r.outOfTime(st)
		}
		if r.gov != nil {
			err := r.gov.gate(ctx, deadline, o.StatusEvery, func() { r.prog.held(st.Next, st.total()) })
			if ctx.Err() != nil && !errors.Is(err, throttle.ErrCriticalLoad) {
				err = ErrInterrupted
			}
			for reason, d := range r.gov.newlySpent() {
				r.waited(reason, d)
			}
			switch {
			case errors.Is(err, errStopRequested):
				return r.stopRequested(st)
			case errors.Is(err, errOutOfTime):
				return r.outOfTime(st)
			case errors.Is(err, ErrInterrupted):
				return r.interrupted(st)
			case err != nil:
				return r.failed(st, err)
			}
			// An operator or the batch timer may have shrunk the batch
			// while apply was held.
			if n := r.gov.thr.BatchSize(); len(batch) > n {
				carry = append(slices.Clone(batch[n:]), carry...)
				batch = batch[:n]
			}
		}

		// The rows just read must be the rows verified: an edit in place
		// during the run stops it before those rows are deleted.
		if err := mr.CheckUnchanged(); err != nil {
			return &initErr{fmt.Errorf("manifest %s refused at row %d: %w; nothing of the changed part was deleted", o.Manifest, st.Next, err)}
		}
		sec := batch[0].Section()
		idx := manifest.SectionIndex(sec.Stage, sec.Table)
		if idx < 0 {
			// Verify already refused such files; never build SQL for one.
			return fmt.Errorf("row %d: section %s is not allowed", st.Next, sec)
		}
		o.Metrics.BatchStart(sec.Stage, sec.Table)
		began := time.Now()
		out, err := r.batch(ctx, sec, batch, st.Next)
		if r.gov != nil && err == nil {
			// The attempt that committed, not the failed ones and the
			// back-off before it: those say nothing of the batch's size.
			r.gov.thr.Observe(len(batch), out.took)
		}
		if !o.DryRun {
			o.Metrics.BatchEnd(metrics.Batch{Stage: sec.Stage, Table: sec.Table, Deleted: out.Deleted, Gone: out.Gone,
				Skipped: out.Skipped, Unverified: out.Unverified, Devices: out.Devices, Duration: time.Since(began), Err: err})
		}
		c := out.Counts
		if err != nil {
			if errors.Is(err, ErrInterrupted) {
				return r.interrupted(st)
			}
			if errors.Is(err, errOutOfTime) {
				r.dropConn()
				return r.outOfTime(st)
			}
			var ce *checkpointErr
			if errors.As(err, &ce) {
				return fmt.Errorf("cannot record progress, so stopping: %w (the batch before row %d was committed and is redone harmlessly on rerun; the batch from row %d was rolled back)",
					ce.err, st.Next, st.Next)
			}
			return r.failed(st, err)
		}
		st.Sections[idx].add(c)
		st.Next += int64(len(batch))
		r.res.Batches++
		if r.cp != nil {
			if err := r.cp.Record(); err != nil {
				return fmt.Errorf("cannot record progress, so stopping before the next batch: %w (the last batch, rows %d..%d, was committed and will be redone harmlessly on rerun)",
					err, st.Next-int64(len(batch)), st.Next-1)
			}
		}
		if o.Cache != nil && sec.Table == manifest.TableSessionTokens {
			r.cleanCache(ctx, out.removed)
		}
		var total Counts
		for _, s := range st.Sections {
			total.add(s)
		}
		r.prog.update(st.Next, total)
		if !o.DryRun {
			o.Metrics.Remaining(st.Total - st.Next)
		}
		if o.OnBatch != nil {
			o.OnBatch(st.Next)
		}
		wait := o.Wait
		sctx := ctx
		if r.gov != nil {
			wait, sctx = r.gov.ctl.BatchWait(), r.gov.runCtx // a stop request ends the sleep
		}
		if wait > 0 && !o.DryRun && st.Next < st.Total {
			if !deadline.IsZero() {
				wait = min(wait, time.Until(deadline))
			}
			began := time.Now()
			backoff.Sleep(sctx, wait)
			r.waited("wait", time.Since(began))
		}
	}
}

func (r *run) outOfTime(st *State) error {
	r.res.StoppedByTime = true
	if !r.o.DryRun {
		fmt.Fprintf(r.o.Out, "incomplete: --maxRuntime %s reached at row %d of %d; progress is in %s; rerun the same command to continue\n",
			r.o.MaxRuntime, st.Next, st.Total, r.o.Checkpoint)
	}
	return nil
}

// stopRequested is a clean stop an operator asked for (stop file or control
// socket), like --maxRuntime: checkpoint current, exit 0.
func (r *run) stopRequested(st *State) error {
	r.res.StoppedByRequest = r.gov.ctl.StopReason()
	fmt.Fprintf(r.o.Out, "incomplete: stop requested (%s) at row %d of %d; progress is in %s; rerun the same command to continue\n",
		r.res.StoppedByRequest, st.Next, st.Total, r.o.Checkpoint)
	return nil
}

func (r *run) interrupted(st *State) error {
	if r.o.DryRun {
		return fmt.Errorf("%w at row %d of %d (dry run: nothing was deleted)", ErrInterrupted, st.Next, st.Total)
	}
	return fmt.Errorf("%w at row %d of %d; progress is in %s; rerun the same command to resume", ErrInterrupted, st.Next, st.Total, r.o.Checkpoint)
}

func (r *run) failed(st *State, err error) error {
	if r.o.DryRun {
		return fmt.Errorf("dry run stopped at row %d of %d: %w", st.Next, st.Total, err)
	}
	return fmt.Errorf("stopped at row %d of %d: %w; the checkpoint %s is intact: rerun the same command to resume", st.Next, st.Total, err, r.o.Checkpoint)
}

// batch runs one batch, retrying transient failures on a new connection.
func (r *run) batch(ctx context.Context, sec manifest.Section, rows []manifest.Row, at int64) (outcome, error) {
	pol := r.o.Retry
	for attempt := 0; ; attempt++ {
		began := time.Now()
		c, err := r.try(ctx, sec, rows)
		if err != nil && r.fast && !r.o.DryRun && refusedStatement(err) {
			// The batch was rolled back. An engine that cannot run the
			// fast path's statements (several in one round trip, a
			// multi-table DELETE, FORCE INDEX) gets the portable path from
			// now on; a real problem shows up there too.
			r.fast = false
			fmt.Fprintf(r.o.Out, "note        the server refused apply's batch statements (%s); each batch now sends them one at a time (docs/apply.md)\n",
				logging.OneLine(err.Error()))
			r.dropConn()
			began = time.Now()
			c, err = r.try(ctx, sec, rows)
		}
		if err == nil {
			c.took = time.Since(began)
			return c, nil
		}
		var ce *checkpointErr
		if errors.Is(err, ErrInterrupted) || errors.Is(err, errOutOfTime) || errors.As(err, &ce) || !isTransient(err) {
			return outcome{}, err
		}
		r.dropConn()
		if attempt >= pol.Attempts {
			return outcome{}, fmt.Errorf("gave up after %d retries: %w", pol.Attempts, err)
		}
		d := pol.backoff(attempt + 1)
		r.res.Retries++
		msg := logging.OneLine(err.Error())
		r.prog.warn(fmt.Sprintf("transient error at row %d (%s): %s; retry %d of %d in %s",
			at, sec, msg, attempt+1, pol.Attempts, d.Round(time.Millisecond)),
			logging.KeyRows, at, logging.KeyStage, sec.Stage, logging.KeyTable, sec.Table,
			logging.KeyAttempt, attempt+1, logging.KeyAttempts, pol.Attempts, logging.KeyDelay, d.Round(time.Millisecond), logging.KeyError, msg)
		if !backoff.Sleep(ctx, d) {
			return outcome{}, ErrInterrupted
		}
	}
}

// waited adds time spent waiting before a batch, by reason.
func (r *run) waited(reason string, d time.Duration) {
	r.res.Waited[reason] += d
	r.o.Metrics.Throttle(reason, d)
}

// try runs one attempt of a batch. The batch's statements do not use ctx:
// a signal must not abort a transaction half-way, so they run to commit or
// rollback, and the loop stops after them. What bounds them is the
// connection's read and write timeouts (BatchTimeout plus slack unless the
// DSN sets its own): a context that can end would do no more, and
// go-sql-driver hands every such statement's context to a watcher
// goroutine and back, a cost small batches notice (docs/benchmarks.md).
func (r *run) try(ctx context.Context, sec manifest.Section, rows []manifest.Row) (outcome, error) {
	bctx := context.WithoutCancel(ctx)
	if r.o.DryRun {
		// The dry run reads through the pool, whose connections the
		// timeouts bound too; a deadline keeps its documented limit.
		dctx, cancel := context.WithTimeout(bctx, r.o.BatchTimeout)
		defer cancel()
		c, err := classifyBatch(dctx, r.db, sec, rows, r.keep)
		return outcome{Counts: c}, err
	}
	if r.conn == nil {
		if err := r.connect(ctx); err != nil {
			if ctx.Err() != nil {
				return outcome{}, ErrInterrupted
			}
			return outcome{}, err
		}
	}
	if r.fast {
		return deleteBatchFast(bctx, r.conn, sec, rows, r.keep, r.syncRecord)
	}
	return deleteBatch(bctx, r.conn, sec, rows, r.keep, r.syncRecord)
}

// checkpointErr is a failed checkpoint sync found before a commit.
type checkpointErr struct{ err error }

func (e *checkpointErr) Error() string { return e.err.Error() }
func (e *checkpointErr) Unwrap() error { return e.err }

// syncRecord makes sure the previous batch's record is on disk before the
// next batch commits.
func (r *run) syncRecord() error {
	if r.cp == nil {
		return nil
	}
	if err := r.cp.Wait(); err != nil {
		return &checkpointErr{err}
	}
	return nil
}

// connect pins a new connection and takes the named lock on it.
func (r *run) connect(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, r.o.DSN.Timeout+statementSlack)
	conn, err := r.db.Conn(cctx)
	cancel()
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	r.conn = conn
	ictx, cancel := context.WithTimeout(ctx, statementSlack)
	err = applySessionSettings(ictx, conn)
	cancel()
	if err != nil {
		// The caller drops the connection and, if the error is transient,
		// connects again.
		return fmt.Errorf("connect: %w", err)
	}
	// Waiting for the lock counts against MaxRuntime like any other time.
	lctx := ctx
	if !r.deadline.IsZero() {
		var cancel context.CancelFunc
		lctx, cancel = context.WithDeadline(ctx, r.deadline)
		defer cancel()
	}
	err = getLock(lctx, conn, r.o.LockName, r.o.LockWait, func(holder int64) {
		r.prog.info(fmt.Sprintf("waiting for named lock %s (held by connection %d, probably the service's own pruning); up to %s",
			r.o.LockName, holder, r.o.LockWait), "lock", r.o.LockName, "holder", holder, logging.KeyReason, "named lock held")
	})
	if err != nil && ctx.Err() == nil && errors.Is(lctx.Err(), context.DeadlineExceeded) {
		return errOutOfTime
	}
	return err
}

// dropConn throws the pinned connection away, not back into the pool: after
// an error its session (and so its lock) may be gone, or, worse, alive in an
// unknown state.
func (r *run) dropConn() {
	if r.conn == nil {
		return
	}
	_ = r.conn.Raw(func(any) error { return driver.ErrBadConn })
	_ = r.conn.Close()
	r.conn = nil
}

// close releases the lock and the connection.
func (r *run) close() {
	if r.conn == nil {
		return
	}
	if err := releaseLock(context.Background(), r.conn, r.o.LockName); err != nil {
		r.dropConn()
		return
	}
	_ = r.conn.Close()
	r.conn = nil
}
