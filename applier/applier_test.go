package applier

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"prune-tokens/internal/dbconn"
	"prune-tokens/internal/test/appliertest"
	"prune-tokens/internal/test/dbtest"
	"prune-tokens/manifest"
)

func options(t *testing.T, db *dbtest.DB, path string) Options {
	t.Helper()
	cfg, err := dbconn.Parse(db.DSN)
	if err != nil {
		t.Fatal(err)
	}
	return Options{DSN: cfg, Manifest: path, Approve: appliertest.Approval(path), BatchSize: 7, Progress: ProgressOff, LockName: "prune-tokens-test/" + db.Name,
		Retry: RetryPolicy{Attempts: 3, Initial: time.Millisecond, Max: 10 * time.Millisecond}}
}

func section(res *Result, stage, table string) SectionResult {
	for _, s := range res.Sections {
		if s.Section == (manifest.Section{Stage: stage, Table: table}) {
			return s
		}
	}
	return SectionResult{}
}

// TestApplyDeletesExactlyTheManifest covers the rules of what apply deletes,
// including what changed after the plan: a device attached to a listed
// token-age session keeps it, rows deleted by someone else count as already
// gone, a row changed since the plan is skipped, and rows that qualify now
// but were not planned stay.
func TestApplyDeletesExactlyTheManifest(t *testing.T) { applyExactly(t, pathChosen) }

// TestLockedPathDeletesExactlyTheManifest is the same with each batch's
// rows read and locked first, as on a server that refuses the guarded
// DELETE: both paths keep the same rules.
func TestLockedPathDeletesExactlyTheManifest(t *testing.T) {
	applyExactly(t, pathPortable)
}

func applyExactly(t *testing.T, force forcedPath) {
	db := dbtest.New(t)
	f := appliertest.New(t, db, 1, appliertest.Small)
	path, sum := f.Manifest(t, t.TempDir())

	// After the plan:
	ta := f.Listed(manifest.StageTokenAge, manifest.TableSessionTokens)
	f.AddDevice(t, ta[0].UID, ta[0].ID) // ta[0] must survive now
	f.Expect("sessionTokens", ta[0].ID, true)
	f.Expect("unverifiedTokens", ta[0].ID, true) // harmless if it has none
	f.DeleteListed(t, f.Listed(manifest.StageTokenAge, manifest.TableAccountResetTokens)[1])
	// Two sessions deleted by someone else, one with a device or unverified
	// row, which stays: apply touches nothing of a session already gone.
	deleted := 0
	for i, r := range f.Listed(manifest.StageMaxSessions, manifest.TableSessionTokens) {
		if (deleted == 0 && f.Deps(r) > 0) || (deleted == 1 && i > 5) {
			f.DeleteListed(t, r)
			deleted++
		}
	}
	if deleted != 2 {
		t.Fatal("fixture has no max-sessions row with a device or unverified row")
	}
	changed := f.Listed(manifest.StageCodeAge, manifest.TableSigninCodes)[0]
	mustExec(t, db.SQL, "UPDATE signinCodes SET createdAt = createdAt + 1 WHERE hash = ?", changed.ID)
	f.Expect("signinCodes", changed.ID, true)
	f.AddSession(t, appliertest.Cutoff-5)
	for _, table := range []string{"accountResetTokens", "passwordForgotTokens", "passwordChangeTokens", "unblockCodes", "signinCodes"} {
		f.AddToken(t, table, appliertest.Cutoff-5)
	}
	if _, err := db.SQL.Exec("DELETE FROM unverifiedTokens WHERE tokenId = ?", ta[0].ID); err != nil {
		t.Fatal(err)
	}
	f.Expect("unverifiedTokens", ta[0].ID, false)

	var out bytes.Buffer
	o := options(t, db, path)
	o.force = force
	o.Approve = strings.ToUpper(sum)
	o.Out = &out
	res, err := Run(context.Background(), o)
	if err != nil {
		t.Fatalf("apply: %v\n%s", err, out.String())
	}
	if strings.Contains(out.String(), "refused apply's batch statements") {
		t.Errorf("MariaDB refused the fast batch statements; the test ran the portable path:\n%s", out.String())
	}
	f.Check(t)
	if !res.Complete || res.Done != int64(len(f.Rows)) {
		t.Errorf("complete=%v done=%d, want all %d", res.Complete, res.Done, len(f.Rows))
	}
	if s := section(res, manifest.StageTokenAge, manifest.TableSessionTokens); s.Skipped != 1 || s.Gone != 0 || s.Deleted != s.Planned-1 {
		t.Errorf("token-age sessions: %+v, want 1 skipped by guard", s)
	}
	if s := section(res, manifest.StageMaxSessions, manifest.TableSessionTokens); s.Gone != 2 || s.Deleted != s.Planned-2 || s.Devices == 0 {
		t.Errorf("max-sessions: %+v, want 2 already gone and devices deleted", s)
	}
	if s := section(res, manifest.StageTokenAge, manifest.TableAccountResetTokens); s.Gone != 1 || s.Deleted != s.Planned-1 {
		t.Errorf("accountResetTokens: %+v, want 1 already gone", s)
	}
	if s := section(res, manifest.StageCodeAge, manifest.TableSigninCodes); s.Skipped != 1 {
		t.Errorf("signinCodes: %+v, want 1 skipped (changed since the plan)", s)
	}
	for _, s := range res.Sections {
		if s.Processed() != s.Planned {
			t.Errorf("%s: deleted+gone+skipped = %d, planned %d", s.Section, s.Processed(), s.Planned)
		}
	}
	if !strings.Contains(out.String(), "matches --approve") || !strings.Contains(out.String(), sum) {
		t.Errorf("header does not show the approved SHA-256:\n%s", out.String())
	}

	// The rerun finds the checkpoint complete and touches nothing.
	before := db.Checksums(t)
	out.Reset()
	res, err = Run(context.Background(), o)
	if err != nil || !res.AlreadyComplete {
		t.Fatalf("rerun: err=%v alreadyComplete=%v", err, res != nil && res.AlreadyComplete)
	}
	if !strings.Contains(out.String(), "already applied completely") {
		t.Errorf("rerun output: %s", out.String())
	}
	if after := db.Checksums(t); !equalMaps(before, after) {
		t.Errorf("rerun of a finished manifest changed the database")
	}
	if st, err := os.Stat(CheckpointPath(path)); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("checkpoint mode: %v %v", st, err)
	}
}

func TestDryRunChangesNothing(t *testing.T) {
	db := dbtest.New(t)
	f := appliertest.New(t, db, 2, appliertest.Small)
	path, _ := f.Manifest(t, t.TempDir())
	ta := f.Listed(manifest.StageTokenAge, manifest.TableSessionTokens)
	f.AddDevice(t, ta[3].UID, ta[3].ID)
	mustExec(t, db.SQL, "DELETE FROM passwordChangeTokens WHERE tokenId = ?", f.Listed(manifest.StageTokenAge, manifest.TablePasswordChangeTokens)[0].ID)
	before := db.Checksums(t)

	o := options(t, db, path)
	o.DryRun = true
	res, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if after := db.Checksums(t); !equalMaps(before, after) {
		t.Fatal("dry run changed the database")
	}
	if _, err := os.Stat(CheckpointPath(path)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("dry run wrote a checkpoint: %v", err)
	}
	if s := section(res, manifest.StageTokenAge, manifest.TableSessionTokens); s.Skipped != 1 || s.Deleted != s.Planned-1 {
		t.Errorf("token-age sessions: %+v", s)
	}
	if s := section(res, manifest.StageTokenAge, manifest.TablePasswordChangeTokens); s.Gone != 1 {
		t.Errorf("passwordChangeTokens: %+v", s)
	}
	planned, tot := res.Totals()
	if tot.Processed() != planned || planned != int64(len(f.Rows)) {
		t.Errorf("totals %+v of %d planned", tot, planned)
	}
}

// TestInterruptAndResume cancels the context after two batches (as SIGTERM
// does), then reruns: the rerun resumes at the recorded row and the end state
// is exact.
func TestInterruptAndResume(t *testing.T) {
	db := dbtest.New(t)
	f := appliertest.New(t, db, 3, appliertest.Small)
	path, _ := f.Manifest(t, t.TempDir())
	ctx, cancel := context.WithCancel(context.Background())
	o := options(t, db, path)
	batches := 0
	o.OnBatch = func(int64) {
		if batches++; batches == 2 {
			cancel()
		}
	}
	res, err := Run(ctx, o)
	if !errors.Is(err, ErrInterrupted) || IsInit(err) {
		t.Fatalf("err = %v, want interrupted", err)
	}
	if res.Done != 14 || !strings.Contains(err.Error(), "rerun the same command") {
		t.Fatalf("done = %d, err = %v", res.Done, err)
	}
	o.OnBatch = nil
	var out bytes.Buffer
	o.Out = &out
	res, err = Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "resuming at row 14 of ") {
		t.Errorf("no resume notice:\n%s", out.String())
	}
	f.Check(t)
	planned, tot := res.Totals()
	if tot.Processed() != planned || tot.Gone != 0 {
		t.Errorf("after resume: %+v of %d (no row should count as gone: the checkpoint was current)", tot, planned)
	}
}

func TestMaxRuntimeStopsCleanly(t *testing.T) {
	db := dbtest.New(t)
	f := appliertest.New(t, db, 4, appliertest.Small)
	path, _ := f.Manifest(t, t.TempDir())
	o := options(t, db, path)
	o.MaxRuntime = time.Nanosecond
	var out bytes.Buffer
	o.Out = &out
	res, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if res.Complete || !res.StoppedByTime || !strings.Contains(out.String(), "rerun the same command to continue") {
		t.Fatalf("complete=%v stopped=%v\n%s", res.Complete, res.StoppedByTime, out.String())
	}
	o.MaxRuntime = 0
	if _, err := Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	f.Check(t)
}

// TestWaitsForTheNamedLock: while another session holds FxA's prune lock,
// apply deletes nothing; after LockWait it stops with an operation error.
func TestWaitsForTheNamedLock(t *testing.T) {
	db := dbtest.New(t)
	f := appliertest.New(t, db, 5, appliertest.Small)
	path, _ := f.Manifest(t, t.TempDir())
	holder, err := db.SQL.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	var got int
	lock := "prune-tokens-test/" + db.Name
	if err := holder.QueryRowContext(context.Background(), "SELECT GET_LOCK(?, 0)", lock).Scan(&got); err != nil || got != 1 {
		t.Fatalf("take lock: %v %d", err, got)
	}
	before := db.Checksums(t)
	o := options(t, db, path)
	o.LockWait = time.Millisecond
	var log bytes.Buffer
	o.Log = &log
	_, err = Run(context.Background(), o)
	if err == nil || IsInit(err) || !errors.Is(err, errLockBusy) {
		t.Fatalf("err = %v, want lock busy", err)
	}
	if !strings.Contains(log.String(), "waiting for named lock") {
		t.Errorf("log: %s", log.String())
	}
	if !equalMaps(before, db.Checksums(t)) {
		t.Fatal("apply deleted while the service held the prune lock")
	}
	// Waiting for the lock counts against --maxRuntime: a clean stop.
	o.LockWait = time.Hour
	o.MaxRuntime = 300 * time.Millisecond
	res, err := Run(context.Background(), o)
	if err != nil || !res.StoppedByTime || res.Done != 0 {
		t.Fatalf("lock held past max runtime: err %v, result %+v", err, res)
	}
	if _, err := holder.ExecContext(context.Background(), "DO RELEASE_LOCK(?)", lock); err != nil {
		t.Fatal(err)
	}
	if _, err := Run(context.Background(), options(t, db, path)); err != nil {
		t.Fatal(err)
	}
	f.Check(t)
}

// TestSurvivesKilledConnection kills apply's connection (and so its lock)
// from another session between batches: apply reconnects, re-takes the lock
// and finishes exactly.
func TestSurvivesKilledConnection(t *testing.T) {
	db := dbtest.New(t)
	f := appliertest.New(t, db, 6, appliertest.Small)
	path, _ := f.Manifest(t, t.TempDir())
	o := options(t, db, path)
	var log bytes.Buffer
	o.Log = &log
	kills := 0
	o.OnBatch = func(done int64) {
		if done%3 != 0 || kills >= 3 {
			return
		}
		var id sql.NullInt64
		if err := db.SQL.QueryRow("SELECT IS_USED_LOCK(?)", o.LockName).Scan(&id); err != nil || !id.Valid {
			t.Errorf("apply does not hold the lock between batches: %v %v", id, err)
			return
		}
		mustExec(t, db.SQL, "KILL CONNECTION ?", id.Int64)
		kills++
	}
	res, err := Run(context.Background(), o)
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	if kills == 0 || res.Retries < kills {
		t.Errorf("kills %d, retries %d", kills, res.Retries)
	}
	f.Check(t)
	var free int
	if err := db.SQL.QueryRow("SELECT IS_FREE_LOCK(?)", o.LockName).Scan(&free); err != nil || free != 1 {
		t.Errorf("lock not released at the end: %v %d", err, free)
	}
}

// TestRefusesUnreachableServer: an unreachable server is an init error
// naming it. The checkpoint apply created first records row 0, so the run
// against the right server is a fresh start, not a resume, and ends exact.
func TestRefusesUnreachableServer(t *testing.T) {
	db := dbtest.New(t)
	f := appliertest.New(t, db, 7, appliertest.Small)
	path, _ := f.Manifest(t, t.TempDir())
	o := options(t, db, path)
	cfg := o.DSN.Clone()
	cfg.Addr = "127.0.0.1:1" // nothing listens there
	o.DSN = cfg
	_, err := Run(context.Background(), o)
	if !IsInit(err) || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Fatalf("unreachable server: err = %v, want an init error naming it", err)
	}
	if next, total, err := Progress(CheckpointPath(path)); err != nil || next != 0 || total != int64(len(f.Rows)) {
		t.Fatalf("checkpoint after the refusal: row %d of %d, %v; want row 0 of %d", next, total, err, len(f.Rows))
	}
	var out bytes.Buffer
	o = options(t, db, path)
	o.Out = &out
	if _, err := Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "resuming") {
		t.Errorf("a checkpoint at row 0 was resumed:\n%s", out.String())
	}
	f.Check(t)
}

func TestRefusesCheckpointOfAnotherManifest(t *testing.T) {
	db := dbtest.New(t)
	f := appliertest.New(t, db, 8, appliertest.Small)
	dir := t.TempDir()
	path, _ := f.Manifest(t, dir)
	other, _ := appliertest.WriteManifest(t, dir, "other.parquet", f.Rows[:3], time.Now())
	o := options(t, db, other)
	o.MaxRuntime = time.Nanosecond // creates the checkpoint, deletes nothing
	o.Checkpoint = CheckpointPath(path)
	if _, err := Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	before := db.Checksums(t)
	_, err := Run(context.Background(), options(t, db, path))
	if !IsInit(err) || !strings.Contains(err.Error(), "belongs to another manifest") {
		t.Fatalf("err = %v", err)
	}
	if !equalMaps(before, db.Checksums(t)) {
		t.Fatal("database changed")
	}
}

// TestStopsWhenProgressCannotBeRecorded: when a checkpoint record cannot be
// synced, apply finds out before the next batch commits, rolls that batch
// back and stops (not an init error); the rerun ends exact.
func TestStopsWhenProgressCannotBeRecorded(t *testing.T) {
	db := dbtest.New(t)
	f := appliertest.New(t, db, 9, appliertest.Small)
	path, _ := f.Manifest(t, t.TempDir())
	forgot := f.Listed(manifest.StageTokenAge, manifest.TablePasswordForgotTokens)
	o := options(t, db, path)
	syncs := 0
	o.checkpointSync = func(f *os.File) error {
		if syncs++; syncs == 3 { // the record of the third batch
			return syscall.EIO
		}
		return datasync(f)
	}
	res, err := Run(context.Background(), o)
	o.checkpointSync = nil
	if err == nil || IsInit(err) || !errors.Is(err, syscall.EIO) || !strings.Contains(err.Error(), "cannot record progress") {
		t.Fatalf("err = %v", err)
	}
	// Batches: 7 + 7 max-sessions rows, then the 6 accountResetTokens rows;
	// the fourth batch (passwordForgotTokens) was rolled back.
	if res.Done != 20 || res.Batches != 3 {
		t.Errorf("done %d in %d batches, want 20 rows in 3", res.Done, res.Batches)
	}
	keys := appliertest.Keys(t, db.SQL, manifest.TablePasswordForgotTokens)
	for _, r := range forgot {
		if !keys[hex.EncodeToString(r.ID)] {
			t.Fatalf("a batch committed after its predecessor's record failed")
		}
	}
	if _, err := Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	f.Check(t)
}

// TestRefusesBadOptions: each bad option is refused before anything else
// happens (no checkpoint appears), naming its own flag. The manifest is
// valid, so nothing but the option can cause the refusal; the same options
// without the fault get as far as connecting.
func TestRefusesBadOptions(t *testing.T) {
	dir := t.TempDir()
	rows := []manifest.Row{{Stage: manifest.StageCodeAge, Table: manifest.TableSigninCodes, ID: b(1, 32), UID: b(2, 16), CreatedAt: 1}}
	path, sum := appliertest.WriteManifest(t, dir, "plan.parquet", rows, time.Now())
	cfg, err := dbconn.Parse("root@tcp(127.0.0.1:1)/fxa") // nothing listens there
	if err != nil {
		t.Fatal(err)
	}
	if o, err := (Options{DSN: cfg, Manifest: path, Approve: sum}).withDefaults(); err != nil || o.LockName != "fxa-auth-server.prune-lock" {
		t.Errorf("default lock %q, %v; want FxA's", o.LockName, err)
	}
	valid := Options{DSN: cfg, Manifest: path, Approve: sum, BatchSize: 5, Wait: time.Second,
		MaxRuntime: time.Minute, MaxManifestAge: time.Hour, Retry: RetryPolicy{Attempts: 1, Initial: time.Millisecond, Max: time.Millisecond}}
	for _, c := range []struct {
		flag string
		bad  func(*Options)
	}{
		{"--dsn", func(o *Options) { o.DSN = nil }},
		{"--manifest", func(o *Options) { o.Manifest = "" }},
		{"--batchSize", func(o *Options) { o.BatchSize = -1 }},
		{"--batchSize", func(o *Options) { o.BatchSize = MaxBatchSize + 1 }},
		{"--approve", func(o *Options) { o.Approve = "abc" }},
		{"--approve", func(o *Options) { o.Approve = "" }}, // not approved at all
		{"--wait", func(o *Options) { o.Wait = -time.Second }},
		{"--maxRuntime", func(o *Options) { o.MaxRuntime = -time.Second }},
		{"--maxManifestAge", func(o *Options) { o.MaxManifestAge = -time.Second }},
	} {
		o := valid
		o.Checkpoint = filepath.Join(dir, strings.TrimPrefix(c.flag, "--")+".checkpoint")
		c.bad(&o)
		_, err := Run(context.Background(), o)
		if !IsInit(err) || !strings.Contains(err.Error(), c.flag) {
			t.Errorf("bad %s: err = %v, want an init error naming %s", c.flag, err, c.flag)
		}
		if _, serr := os.Stat(o.Checkpoint); serr == nil {
			t.Errorf("bad %s: a checkpoint was created before the options were refused", c.flag)
		}
	}
	// The control: the same options, none bad, are refused only at the
	// unreachable server.
	if _, err := Run(context.Background(), valid); !IsInit(err) || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Errorf("valid options: err = %v, want the unreachable server", err)
	}
}

func mustExec(t testing.TB, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func equalMaps(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestEmptyManifestDoesNothing(t *testing.T) {
	db := dbtest.New(t)
	path, _ := appliertest.WriteManifest(t, t.TempDir(), "empty.parquet", nil, time.Now())
	var out bytes.Buffer
	o := options(t, db, path)
	o.Out = &out
	res, err := Run(context.Background(), o)
	if err != nil || !res.Complete || !strings.Contains(out.String(), "lists no rows") {
		t.Fatalf("err %v, complete %v\n%s", err, res != nil && res.Complete, out.String())
	}
}

// TestStopsWhenManifestChangesDuringApply: rows read from a file edited in
// place after verification were never approved; apply stops before
// deleting them.
func TestStopsWhenManifestChangesDuringApply(t *testing.T) {
	db := dbtest.New(t)
	f := appliertest.New(t, db, 5, appliertest.Small)
	path, _ := f.Manifest(t, t.TempDir())
	o := options(t, db, path)
	o.OnBatch = func(done int64) {
		if done == 7 {
			fh, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Error(err)
				return
			}
			fh.Write([]byte{0})
			fh.Close()
		}
	}
	before := 0
	for _, tbl := range dbtest.Tables {
		before += db.Count(t, tbl)
	}
	res, err := Run(context.Background(), o)
	if !IsInit(err) || !strings.Contains(err.Error(), "modified after it was opened") {
		t.Fatalf("err = %v, want a refusal (exit 2) naming the modified manifest", err)
	}
	if res.Done != 7 {
		t.Errorf("done = %d, want 7: only the first batch, read before the edit", res.Done)
	}
	after := 0
	for _, tbl := range dbtest.Tables {
		after += db.Count(t, tbl)
	}
	if before-after > 7+7 { // the batch's rows plus, at most, their unverified/devices rows
		t.Errorf("%d rows deleted, more than the first batch could", before-after)
	}
}

// TestAppliesVersion1Manifest: a manifest written by the previous release
// (format version 1: token-age and code-age sections in createdAt order,
// testdata/manifest-v1, planned from this very fixture) is still applied
// exactly, so a plan approved before an upgrade is not stranded by it.
func TestAppliesVersion1Manifest(t *testing.T) {
	db := dbtest.New(t)
	f := appliertest.New(t, db, 11, appliertest.Small)
	path := appliertest.CopyFile(t, filepath.Join(dbtest.RepoRoot(), "testdata", "manifest-v1", "fixture-seed-11.parquet"), t.TempDir())
	mr, err := manifest.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if v := mr.Meta().FormatVersion; v != 1 {
		t.Fatalf("testdata manifest is format %d, want 1: the test proves nothing", v)
	}
	mr.Close()
	o := options(t, db, path)
	o.MaxManifestAge = 0 // planned once, long ago
	res, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	f.Check(t)
	if planned, tot := res.Totals(); tot.Deleted != planned || planned != int64(len(f.Rows)) {
		t.Errorf("deleted %d of %d planned, fixture lists %d", tot.Deleted, planned, len(f.Rows))
	}
}

// TestHeaderNotesAnotherDatabase: apply's header notes when the database it
// connected to is not the one the plan was made from, and only then.
func TestHeaderNotesAnotherDatabase(t *testing.T) {
	db := dbtest.New(t)
	f := appliertest.New(t, db, 18, appliertest.Small)
	dir := t.TempDir()
	note := fmt.Sprintf("note      the target database %q is not the plan's source database %q", db.Name, "fxa")
	for _, src := range []string{"fxa", db.Name} {
		path, _ := appliertest.WriteManifestFrom(t, dir, src+".parquet", f.Rows, time.Now(), manifest.Source{Host: "127.0.0.1", Port: 3306, Database: src})
		o := options(t, db, path)
		o.DryRun = true
		var out bytes.Buffer
		o.Out = &out
		if _, err := Run(context.Background(), o); err != nil {
			t.Fatal(err)
		}
		if got := strings.Contains(out.String(), note); got != (src != db.Name) {
			t.Errorf("planned from %q, applied to %q: note printed %v\n%s", src, db.Name, got, out.String())
		}
	}
}
