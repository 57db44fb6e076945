package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"prune-tokens/applier"
	"prune-tokens/internal/test/appliertest"
	"prune-tokens/internal/test/clitest"
	"prune-tokens/internal/test/dbtest"
	"prune-tokens/manifest"
)

func applyArgs(db *dbtest.DB, path string, extra ...string) []string {
	return append([]string{"apply", "--dsn", db.DSN, "--manifest", path, "--approve", appliertest.Approval(path), "--wait", "0"}, extra...)
}

func sameChecksums(a, b map[string]int64) bool {
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return len(a) == len(b)
}

func oneErrorLine(t *testing.T, stderr string) string {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, "prune-tokens: ") {
		t.Errorf("last stderr line is not the error: %q", stderr)
	}
	return last
}

func TestApplyRefusesBadFlags(t *testing.T) {
	dsn := "root@tcp(127.0.0.1:3306)/fxa"
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"apply", "--dsn", dsn}, "--manifest is required"},
		{[]string{"apply", "--manifest", "m.parquet", "--dsn", ""}, "no DSN"},
		{[]string{"apply", "--dsn", dsn, "--manifest", "m", "--batchSize", "0"}, "--batchSize \"0\""},
		{[]string{"apply", "--dsn", dsn, "--manifest", "m", "--maxSessionsBatchSize", "-3"}, "--batchSize \"-3\""},
		{[]string{"apply", "--dsn", dsn, "--manifest", "m", "--batchSize", "lots"}, "--batchSize \"lots\""},
		{[]string{"apply", "--dsn", dsn, "--manifest", "m", "--batchSize", "1000000"}, "from 1 to"},
		{[]string{"apply", "--dsn", dsn, "--manifest", "m", "--wait", "soon"}, "--wait"},
		{[]string{"apply", "--dsn", dsn, "--manifest", "m", "--maxRuntime", "-1h"}, "--maxRuntime"},
		{[]string{"apply", "--dsn", dsn, "--manifest", "m", "--maxManifestAge", "7 fortnights"}, "--maxManifestAge"},
		{[]string{"apply", "--dsn", dsn, "--manifest", "m", "--approve", "abc"}, "not a SHA-256"},
		{[]string{"apply", "--dsn", dsn, "--manifest", "m", "--approve", ""}, "--approve is empty"},
		{[]string{"apply", "--dsn", dsn, "--manifest", "m", "--dryRun", "--checkpoint", "c"}, "--dryRun"},
		{[]string{"apply", "--dsn", dsn, "--manifest", "m", "--checkpoint", "m"}, "same file"},
		{[]string{"apply", "--dsn", dsn, "--manifest", "m", "--redisOnly"}, "--redisOnly cleans the Redis session cache: give --redis"},
		{[]string{"apply", "--dsn", dsn, "--manifest", "m", "--dryRun", "--redis", "redis://127.0.0.1:1/0"}, "it takes no --redis"},
		{[]string{"apply", "--dsn", dsn, "m.parquet"}, "takes no arguments"},
		{[]string{"apply", "--dsn", "user:secret@tcp(127.0.0.1:1)/fxa", "--manifest", filepath.Join(t.TempDir(), "none.parquet"), "--approve", strings.Repeat("0", 64)}, "none.parquet"},
	} {
		code, _, stderr := run(t, c.args...)
		line := oneErrorLine(t, stderr)
		if code != exitInit || !strings.Contains(line, c.want) {
			t.Errorf("%q: exit %d, %q; want exit 2 naming %q", c.args, code, line, c.want)
		}
		if strings.Contains(stderr, "secret") {
			t.Errorf("%q: password in output: %q", c.args, stderr)
		}
	}
}

func TestApplyRefusesBadManifests(t *testing.T) {
	db := dbtest.New(t)
	f := appliertest.New(t, db, 11, appliertest.Small)
	dir := t.TempDir()
	good, _ := f.Manifest(t, dir)
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	corrupt := bytes.Clone(data)
	for i := len(corrupt) / 3; i < len(corrupt)/3+16; i++ {
		corrupt[i] ^= 0xff
	}
	// Opening a FIFO blocks until a writer appears: apply must refuse it
	// without reading.
	fifo := filepath.Join(dir, "fifo.parquet")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	tampered := filepath.Join(dir, "tampered.parquet")
	tamper(t, good, tampered)
	cases := map[string]string{
		"truncated":   write("truncated.parquet", data[:len(data)/2]),
		"corrupted":   write("corrupted.parquet", corrupt),
		"tampered":    tampered,
		"empty":       write("empty.parquet", nil),
		"not parquet": write("notes.parquet", []byte("stage,table_name,id\nmax-sessions,sessionTokens,00\n")),
		"a directory": dir,
		"a FIFO":      fifo,
	}
	before := db.Checksums(t)
	for name, path := range cases {
		code, _, stderr := run(t, applyArgs(db, path)...)
		line := oneErrorLine(t, stderr)
		if code != exitInit || !strings.Contains(line, "refused") {
			t.Errorf("%s: exit %d, %q; want exit 2, refused", name, code, line)
		}
		if _, err := os.Stat(path + ".checkpoint"); err == nil {
			t.Errorf("%s: a checkpoint was written for a refused manifest", name)
		}
	}
	if !sameChecksums(before, db.Checksums(t)) {
		t.Fatal("a refused manifest changed the database")
	}
}

// TestApplyRefusesCraftedCheckpoint: a checkpoint record with a valid
// checksum that claims more sections than a slot holds is refused with the
// one-line "damaged" error, exit 2, and nothing is deleted. (11 to 16 sections
// once made apply read past the slot and panic; a Go panic also exits 2, so
// the test checks the message, not only the code.)
func TestApplyRefusesCraftedCheckpoint(t *testing.T) {
	db := dbtest.New(t)
	f := appliertest.New(t, db, 16, appliertest.Small)
	path, sum := f.Manifest(t, t.TempDir())
	cp := path + ".checkpoint"
	// An apply that cannot reach its server leaves a checkpoint at row 0.
	if p := clitest.Run(t, nil, "apply", "--dsn", "root@tcp(127.0.0.1:1)/fxa", "--manifest", path, "--approve", sum); p.Code != exitInit {
		t.Fatalf("apply against no server: %s", p)
	}
	before := db.Checksums(t)
	for _, n := range []uint64{11, 16} {
		appliertest.CraftCheckpointSections(t, cp, n)
		p := clitest.Run(t, []string{"PRUNE_TOKENS_DSN=" + db.DSN}, "apply", "--manifest", path, "--approve", sum)
		stderr := strings.TrimSpace(p.Stderr.String())
		if p.Code != exitInit || strings.Contains(stderr, "\n") || !strings.Contains(stderr, "checkpoint "+cp+" is damaged") {
			t.Errorf("checkpoint claiming %d sections: %s\nwant exit 2 and one line saying the checkpoint is damaged", n, p)
		}
	}
	if !sameChecksums(before, db.Checksums(t)) {
		t.Fatal("apply with a crafted checkpoint changed the database")
	}
}

func TestApplyApprovalAndAge(t *testing.T) {
	db := dbtest.New(t)
	f := appliertest.New(t, db, 12, appliertest.Small)
	dir := t.TempDir()
	stale, staleSum := appliertest.WriteManifest(t, dir, "stale.parquet", f.Rows, time.Now().Add(-8*24*time.Hour))
	path, sum := f.Manifest(t, dir)
	before := db.Checksums(t)

	// Not approved at all: refused before it connects (the server here is
	// unreachable, and the line names the approval, not the server).
	code, _, stderr := run(t, "apply", "--dsn", "root@tcp(127.0.0.1:1)/fxa", "--manifest", path)
	if line := oneErrorLine(t, stderr); code != exitInit || !strings.Contains(line, "only an approved manifest") || !strings.Contains(line, "--approve") {
		t.Errorf("no --approve: exit %d, %q; want exit 2 asking for --approve", code, line)
	}
	if _, err := os.Stat(path + ".checkpoint"); err == nil {
		t.Error("an apply refused for want of approval created a checkpoint")
	}
	wrong := strings.Repeat("0", 64)
	code, _, stderr = run(t, applyArgs(db, path, "--approve", wrong)...)
	if line := oneErrorLine(t, stderr); code != exitInit || !strings.Contains(line, sum) || !strings.Contains(line, "not the approved") {
		t.Errorf("wrong --approve: exit %d, %q", code, line)
	}
	code, _, stderr = run(t, applyArgs(db, stale, "--approve", staleSum)...)
	if line := oneErrorLine(t, stderr); code != exitInit || !strings.Contains(line, "--maxManifestAge") {
		t.Errorf("stale manifest: exit %d, %q", code, line)
	}
	if !sameChecksums(before, db.Checksums(t)) {
		t.Fatal("a refused apply changed the database")
	}

	code, stdout, stderr := run(t, applyArgs(db, path, "--approve", sum, "--batchSize", "5")...)
	if code != 0 {
		t.Fatalf("right --approve: exit %d\n%s\n%s", code, stdout, stderr)
	}
	f.Check(t)
	for _, want := range []string{"matches --approve", "Skipped by guard", "Already gone", "total", "complete"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	code, stdout, _ = run(t, applyArgs(db, path, "--approve", sum)...)
	if code != 0 || !strings.Contains(stdout, "already applied completely") {
		t.Errorf("rerun: exit %d\n%s", code, stdout)
	}

	// A checkpoint is bound to its manifest.
	code, _, stderr = run(t, applyArgs(db, stale, "--maxManifestAge", "30 days", "--checkpoint", path+".checkpoint")...)
	if line := oneErrorLine(t, stderr); code != exitInit || !strings.Contains(line, "another manifest") {
		t.Errorf("foreign checkpoint: exit %d, %q", code, line)
	}
	// The stale one applies when the age limit is raised (all rows gone by now).
	code, stdout, _ = run(t, applyArgs(db, stale, "--maxManifestAge", "30 days")...)
	if code != 0 || !strings.Contains(stdout, "Already gone") {
		t.Errorf("stale manifest with --maxManifestAge 30 days: exit %d\n%s", code, stdout)
	}
}

func TestApplyDryRunCLI(t *testing.T) {
	db := dbtest.New(t)
	f := appliertest.New(t, db, 13, appliertest.Small)
	path, _ := f.Manifest(t, t.TempDir())
	before := db.Checksums(t)
	// A dry run deletes nothing, so it needs no approval.
	code, stdout, stderr := run(t, "apply", "--dsn", db.DSN, "--manifest", path, "--dryRun")
	if code != 0 || !strings.Contains(stdout, "Would delete") || !strings.Contains(stdout, "nothing was deleted") {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	if !sameChecksums(before, db.Checksums(t)) {
		t.Fatal("dry run changed the database")
	}
}

// startApply runs the real binary's apply on db's database.
func startApply(t *testing.T, db *dbtest.DB, path string, extra ...string) *clitest.Proc {
	t.Helper()
	return clitest.Start(t, []string{"PRUNE_TOKENS_DSN=" + db.DSN}, append([]string{"apply", "--manifest", path, "--approve", appliertest.Approval(path)}, extra...)...)
}

func TestApplySecondConcurrentApplyRefused(t *testing.T) {
	db := dbtest.New(t)
	f := appliertest.New(t, db, 14, appliertest.Small)
	path, _ := f.Manifest(t, t.TempDir())
	// Hold FxA's prune lock so the first apply waits, holding its
	// checkpoint lock, for as long as the test needs.
	holder, err := db.SQL.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	// Named locks are global to the server: another package's test may hold
	// this one for a moment.
	var got int
	if err := holder.QueryRowContext(context.Background(), "SELECT GET_LOCK('fxa-auth-server.prune-lock', 60)").Scan(&got); err != nil || got != 1 {
		t.Fatalf("take the prune lock: %v %d", err, got)
	}
	first := startApply(t, db, path, "--wait", "0")
	first.WaitFor(t, "the first apply to wait for the named lock", func() bool {
		return strings.Contains(first.Stderr.String(), "waiting for named lock")
	})
	code, _, stderr := run(t, applyArgs(db, path)...)
	if line := oneErrorLine(t, stderr); code != exitInit || !strings.Contains(line, "another apply of this manifest is running") {
		t.Errorf("second apply: exit %d, %q", code, line)
	}
	if _, err := holder.ExecContext(context.Background(), "DO RELEASE_LOCK('fxa-auth-server.prune-lock')"); err != nil {
		t.Fatal(err)
	}
	if code := first.Wait(t).Code; code != 0 {
		t.Fatalf("first apply: exit %d\n%s", code, first.Stderr)
	}
	f.Check(t)
}

// TestApplySignalFinishesTheBatchInFlight: SIGINT or SIGTERM while a batch
// is in flight (waiting for a row lock another connection holds) does not
// abort it: apply lets it commit, records it and exits 3 with "interrupted
// at row N", N the row after that batch; the database shows the batch
// deleted and the next one untouched; the rerun resumes at N and ends exact.
func TestApplySignalFinishesTheBatchInFlight(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			db := dbtest.New(t)
			f := appliertest.New(t, db, 15, appliertest.Small)
			path, _ := f.Manifest(t, t.TempDir())
			held := f.HoldFirstSessionBatch(t, manifest.StageTokenAge, 7)
			batch, end := held.Rows, held.Start+len(held.Rows)
			c := startApply(t, db, path, "--batchSize", "7", "--wait", "0")
			held.Blocker.WaitForWaiter(t) // the batch is in flight
			if err := c.Cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			// Give the signal time to land while the batch waits: an apply
			// that aborted its batch on the signal would end here.
			time.Sleep(500 * time.Millisecond)
			if c.Exited() {
				t.Fatalf("apply ended while its batch in flight waited for a row lock: %s", c)
			}
			held.Blocker.Release(t)
			if code := c.Wait(t).Code; code != exitOperation {
				t.Fatalf("%v: exit %d, want 3\n%s", sig, code, c)
			}
			want := fmt.Sprintf("interrupted at row %d of %d", end, len(f.Rows))
			if line := oneErrorLine(t, c.Stderr.String()); !strings.Contains(line, want) || !strings.Contains(line, "rerun the same command") {
				t.Errorf("%v: %q; want %q and how to resume", sig, line, want)
			}
			if next, _, err := applier.Progress(path + ".checkpoint"); err != nil || next != int64(end) {
				t.Errorf("checkpoint at row %d (%v), want %d", next, err, end)
			}
			keys := appliertest.Keys(t, db.SQL, manifest.TableSessionTokens)
			for _, r := range batch {
				if keys[hex.EncodeToString(r.ID)] {
					t.Errorf("session %x of the batch in flight is still there: not committed", r.ID[:4])
				}
			}
			if !keys[hex.EncodeToString(f.Rows[end].ID)] {
				t.Errorf("session %x after the batch in flight was deleted", f.Rows[end].ID[:4])
			}
			code, stdout, stderr := run(t, applyArgs(db, path)...)
			if code != 0 || !strings.Contains(stdout, fmt.Sprintf("resuming at row %d of ", end)) {
				t.Fatalf("resume: exit %d\n%s\n%s", code, stdout, stderr)
			}
			f.Check(t)
		})
	}
}

// TestApplyNamedLockHeld: while another session holds FxA's prune lock,
// apply deletes nothing. When its wait for the lock gives up it exits 3 (an
// error during the operation, resumable); with a --maxRuntime shorter than
// the wait it stops cleanly instead: exit 0, "incomplete". Once the lock is
// free the same command finishes.
func TestApplyNamedLockHeld(t *testing.T) {
	db := dbtest.New(t)
	f := appliertest.New(t, db, 17, appliertest.Small)
	path, _ := f.Manifest(t, t.TempDir())
	holder, err := db.SQL.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	var got int
	if err := holder.QueryRowContext(context.Background(), "SELECT GET_LOCK(?, 60)", applier.LockName).Scan(&got); err != nil || got != 1 {
		t.Fatalf("take the prune lock: %v %d", err, got)
	}
	before := db.Checksums(t)
	code, _, stderr := run(t, applyArgs(db, path, "--lockWait", "100ms")...)
	if line := oneErrorLine(t, stderr); code != exitOperation || !strings.Contains(line, "named lock") || !strings.Contains(line, "rerun the same command") {
		t.Errorf("lock wait given up: exit %d, %q; want exit 3 naming the named lock", code, line)
	}
	if !strings.Contains(stderr, "waiting for named lock "+applier.LockName) {
		t.Errorf("no waiting notice:\n%s", stderr)
	}

	code, stdout, stderr := run(t, applyArgs(db, path, "--lockWait", "1h", "--maxRuntime", "1s")...)
	if code != exitOK || !strings.Contains(stdout, "incomplete: --maxRuntime 1s reached at row 0") {
		t.Errorf("--maxRuntime while waiting for the lock: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if !sameChecksums(before, db.Checksums(t)) {
		t.Fatal("apply deleted while the prune lock was held by another session")
	}

	if _, err := holder.ExecContext(context.Background(), "DO RELEASE_LOCK(?)", applier.LockName); err != nil {
		t.Fatal(err)
	}
	if code, stdout, stderr := run(t, applyArgs(db, path)...); code != exitOK {
		t.Fatalf("with the lock free: exit %d\n%s\n%s", code, stdout, stderr)
	}
	f.Check(t)
}

// TestApplySurvivesSIGKILL kills the real binary at random moments, several
// times per run, then lets a rerun finish: every table must end exactly as
// after an uninterrupted apply of the same manifest on identical data.
func TestApplySurvivesSIGKILL(t *testing.T) {
	sizes := appliertest.Sizes{MaxSessionAccounts: 3, SessionsPerAccount: 60, TokenAgeSessions: 300, OtherTokens: 50}
	dir := t.TempDir()
	planned := time.Now()
	const seed = 21

	ref := dbtest.New(t)
	fr := appliertest.New(t, ref, seed, sizes)
	path, _ := appliertest.WriteManifest(t, dir, "plan.parquet", fr.Rows, planned)
	if code, out, errs := run(t, applyArgs(ref, path, "--checkpoint", filepath.Join(dir, "ref.checkpoint"))...); code != 0 {
		t.Fatalf("reference apply: exit %d\n%s\n%s", code, out, errs)
	}
	fr.Check(t)
	want := ref.Checksums(t)

	// A fixed seed: a failure replays with the same kill points.
	rnd := rand.New(rand.NewPCG(seed, 1))
	for round := range 3 {
		db := dbtest.New(t)
		f := appliertest.New(t, db, seed, sizes)
		cp := filepath.Join(dir, "round"+string(rune('a'+round))+".checkpoint")
		kills := 0
		for range 3 {
			before := db.Count(t, "sessionTokens")
			c := startApply(t, db, path, "--checkpoint", cp, "--batchSize", "2", "--wait", "0")
			// Kill only once this apply has committed a batch (a batch
			// deletes sessionTokens rows), and at a different point each
			// time: after 1 to 40 of its rows are gone.
			target := 1 + rnd.IntN(40)
			if killAfter(t, c, db, before, target) {
				kills++
				left := db.Count(t, "sessionTokens")
				t.Logf("round %d: killed after %d rows were gone; %d sessionTokens left", round, before-left, left)
			} else {
				t.Logf("round %d: finished before %d rows were gone (exit %d)", round, target, c.Code)
			}
		}
		if kills == 0 {
			t.Errorf("round %d: no apply was killed mid-run; the test proved nothing", round)
		}
		code, out, errs := run(t, applyArgs(db, path, "--checkpoint", cp)...)
		if code != 0 {
			t.Fatalf("round %d: final apply: exit %d\n%s\n%s", round, code, out, errs)
		}
		f.Check(t)
		if got := db.Checksums(t); !sameChecksums(got, want) {
			t.Errorf("round %d (%d kills): tables differ from the uninterrupted run: got %v want %v", round, kills, got, want)
		}
		// The final table adds up whatever the kills did.
		if !strings.Contains(out, "total") {
			t.Errorf("round %d: no outcome table:\n%s", round, out)
		}
	}
}

// killAfter SIGKILLs c once at least n sessionTokens rows fewer than before
// are in db, and says whether it did; false if c ended first.
func killAfter(t *testing.T, c *clitest.Proc, db *dbtest.DB, before, n int) bool {
	t.Helper()
	for {
		select {
		case <-c.Done:
			return false
		default:
		}
		if before-db.Count(t, "sessionTokens") >= n {
			_ = c.Cmd.Process.Kill()
			<-c.Done
			return true
		}
		time.Sleep(time.Millisecond)
	}
}

// TestPlanThenApply runs the real plan and then apply on the fixture, once
// per stage and once with all of them: plan must list exactly the rows the
// fixture says qualify, and apply must leave exactly the rest in all nine
// tables, including after changes made between plan and apply.
func TestPlanThenApply(t *testing.T) {
	now := strconv.FormatInt(appliertest.Now, 10)
	stageFlags := map[string][]string{
		manifest.StageMaxSessions: {"--maxSessions", "5"},
		manifest.StageTokenAge:    {"--maxTokenAge", "30-days"},
		manifest.StageCodeAge:     {"--maxCodeAge", "30 days"},
	}
	for _, stages := range [][]string{
		{manifest.StageMaxSessions}, {manifest.StageTokenAge}, {manifest.StageCodeAge},
		{manifest.StageMaxSessions, manifest.StageTokenAge, manifest.StageCodeAge},
	} {
		t.Run(strings.Join(stages, "+"), func(t *testing.T) {
			db := dbtest.New(t)
			f := appliertest.New(t, db, 31, appliertest.Small)
			f.Restrict(stages...)
			out := filepath.Join(t.TempDir(), "plan.parquet")
			args := []string{"plan", "--dsn", db.DSN, "--out", out, "--now", now}
			for _, s := range stages {
				args = append(args, stageFlags[s]...)
			}
			if code, stdout, stderr := run(t, args...); code != 0 {
				t.Fatalf("plan: exit %d\n%s\n%s", code, stdout, stderr)
			}
			sameRows(t, out, f.Rows)

			// Between plan and apply: a listed token-age session gains a
			// device, a listed row is deleted by someone else, and new rows
			// that would qualify now appear.
			if ta := f.Listed(manifest.StageTokenAge, manifest.TableSessionTokens); len(ta) > 0 {
				f.AddDevice(t, ta[0].UID, ta[0].ID)
				f.Expect(manifest.TableSessionTokens, ta[0].ID, true)
				if _, err := db.SQL.Exec("DELETE FROM unverifiedTokens WHERE tokenId = ?", ta[0].ID); err != nil {
					t.Fatal(err)
				}
				f.Expect("unverifiedTokens", ta[0].ID, false)
			}
			if len(f.Rows) > 1 {
				f.DeleteListed(t, f.Rows[1])
			}
			f.AddSession(t, appliertest.Cutoff-1)
			f.AddToken(t, manifest.TableSigninCodes, appliertest.Cutoff-1)

			code, stdout, stderr := run(t, applyArgs(db, out, "--batchSize", "4")...)
			if code != 0 {
				t.Fatalf("apply: exit %d\n%s\n%s", code, stdout, stderr)
			}
			f.Check(t)
			if len(f.Rows) > 1 && !regexpGone.MatchString(stdout) {
				t.Errorf("no row counted as already gone:\n%s", stdout)
			}
		})
	}
}

// regexpGone finds a non-zero "already gone" total in the outcome table's
// footer: total | | planned | deleted | gone | skipped.
var regexpGone = regexp.MustCompile(`(?m)total\s*│\s*│\s*\d+\s*│\s*\d+\s*│\s*[1-9]\d*\s*│`)

// sameRows compares a manifest's rows with the expected ones, per section
// and as sets (plan orders accounts its own way).
func sameRows(t *testing.T, path string, want []manifest.Row) {
	t.Helper()
	r, err := manifest.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	key := func(row manifest.Row) string {
		return fmt.Sprintf("%s/%s/%x/%x/%d", row.Stage, row.Table, row.ID, row.UID, row.CreatedAt)
	}
	exp := map[string]bool{}
	for _, row := range want {
		exp[key(row)] = true
	}
	it := r.Rows(0)
	n := 0
	for {
		row, ok := it.Next()
		if !ok {
			break
		}
		n++
		if !exp[key(row)] {
			t.Errorf("plan listed an unexpected row %s", key(row))
		}
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	if n != len(want) {
		t.Errorf("plan listed %d rows, want %d", n, len(want))
	}
}

// TestApplyRefusesForgedManifests: a file whose rows break the rules it
// records, with its digest, counts and ranges computed honestly (as anyone
// who edits the rows can), is refused with exit 2 even when approved by its
// own SHA-256, and nothing is deleted from any table.
func TestApplyRefusesForgedManifests(t *testing.T) {
	db := dbtest.New(t)
	f := appliertest.New(t, db, 19, appliertest.Small)
	dir := t.TempDir()
	src := manifest.Source{Host: "127.0.0.1", Port: 3306, Database: "fxa_test"}

	// A young session, listed by nobody: the forger adds it to token-age.
	listed := map[string]bool{}
	for _, r := range f.Rows {
		listed[string(r.ID)] = true
	}
	var fresh manifest.Row
	res, err := db.SQL.Query("SELECT tokenId, uid, createdAt FROM sessionTokens WHERE createdAt >= ? ORDER BY tokenId", appliertest.Cutoff)
	if err != nil {
		t.Fatal(err)
	}
	for res.Next() {
		r := manifest.Row{Stage: manifest.StageTokenAge, Table: manifest.TableSessionTokens}
		if err := res.Scan(&r.ID, &r.UID, &r.CreatedAt); err != nil {
			t.Fatal(err)
		}
		if !listed[string(r.ID)] {
			fresh = r
			break
		}
	}
	res.Close()
	if fresh.ID == nil {
		t.Fatal("the fixture has no unlisted young session: the test proves nothing")
	}
	withFresh := slices.Clone(f.Rows)
	withFresh = append(withFresh, fresh)
	slices.SortStableFunc(withFresh, func(a, b manifest.Row) int {
		ia, ib := manifest.SectionIndex(a.Stage, a.Table), manifest.SectionIndex(b.Stage, b.Table)
		if ia != ib || a.Stage == manifest.StageMaxSessions {
			return ia - ib // max-sessions keeps its groups' order
		}
		return manifest.CompareKey(a, b)
	})

	var oldestCode int64 = 1 << 62
	for _, r := range f.Rows {
		if r.Stage == manifest.StageCodeAge {
			oldestCode = min(oldestCode, r.CreatedAt)
		}
	}
	cases := []struct {
		name string
		rows []manifest.Row
		edit func(*manifest.Meta)
		want string
	}{
		{"a fresh session under token-age", withFresh, nil, "token_cutoff"},
		{"a code not older than code_cutoff", f.Rows, func(m *manifest.Meta) { m.CodeCutoff = oldestCode }, "code_cutoff"},
		{"a max-sessions group of an account not recorded", f.Rows, func(m *manifest.Meta) { m.TopAccounts = m.TopAccounts[:1] }, "max_sessions_accounts"},
		{"a group larger than its to_delete", f.Rows, func(m *manifest.Meta) { m.TopAccounts[0].ToDelete-- }, "to_delete"},
		{"max-sessions rows of a plan with --maxSessions 0", f.Rows, func(m *manifest.Meta) { m.Flags["maxSessions"] = "0" }, "max-sessions was off"},
		{"token-age rows of a plan with token-age off", f.Rows, func(m *manifest.Meta) { m.TokenCutoff = 0 }, "token-age stage was off"},
	}
	before := db.Checksums(t)
	for i, c := range cases {
		path, _ := appliertest.WriteManifestEdited(t, dir, fmt.Sprintf("forged-%d.parquet", i), c.rows, time.Now(), src, c.edit)
		code, _, stderr := run(t, applyArgs(db, path)...) // approved by its own SHA-256
		if line := oneErrorLine(t, stderr); code != exitInit || !strings.Contains(line, "refused") || !strings.Contains(line, c.want) {
			t.Errorf("%s: exit %d, %q; want exit 2, refused, naming %q", c.name, code, line, c.want)
		}
		if code, out, _ := run(t, "inspect", path); code != exitInit {
			t.Errorf("%s: inspect showed a forged file (exit %d):\n%s", c.name, code, out)
		}
	}
	if !sameChecksums(before, db.Checksums(t)) {
		t.Fatal("a forged manifest changed the database")
	}
}
