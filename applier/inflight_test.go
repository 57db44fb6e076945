package applier

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"strings"
	"sync"
	"testing"

	"prune-tokens/internal/test/appliertest"
	"prune-tokens/internal/test/dbtest"
	"prune-tokens/manifest"
)

// In these tests the batch in flight is the first of the token-age sessions
// (batch size 7, as options sets), and a second connection holds its row
// with the highest key.
const inflightSeed = 42

// holdInflight seeds the fixture, writes its manifest and holds the batch.
func holdInflight(t *testing.T) (*appliertest.Fixture, string, *appliertest.HeldBatch) {
	t.Helper()
	f := appliertest.New(t, dbtest.New(t), inflightSeed, appliertest.Small)
	path, _ := f.Manifest(t, t.TempDir())
	return f, path, f.HoldFirstSessionBatch(t, manifest.StageTokenAge, 7)
}

// uninterrupted applies the same fixture's manifest to a copy of the data
// without any fault and returns the nine tables' checksums after.
func uninterrupted(t *testing.T, seed uint64) map[string]int64 {
	t.Helper()
	db := dbtest.New(t)
	f := appliertest.New(t, db, seed, appliertest.Small)
	path, _ := f.Manifest(t, t.TempDir())
	if _, err := Run(context.Background(), options(t, db, path)); err != nil {
		t.Fatalf("uninterrupted apply: %v", err)
	}
	f.Check(t)
	return db.Checksums(t)
}

type runResult struct {
	res *Result
	err error
}

func runAsync(ctx context.Context, o Options) <-chan runResult {
	done := make(chan runResult, 1)
	go func() {
		res, err := Run(ctx, o)
		done <- runResult{res, err}
	}()
	return done
}

// TestInterruptFinishesTheBatchInFlight: SIGINT/SIGTERM (a cancelled
// context) while a batch is in flight lets that batch commit, records it,
// and stops before the next one. The context is cancelled while the batch
// waits for a row lock; the database and the checkpoint then show the batch
// committed, not rolled back, and the rows after it untouched.
func TestInterruptFinishesTheBatchInFlight(t *testing.T) {
	f, path, held := holdInflight(t)
	db, batch := f.DB, held.Rows
	end := int64(held.Start + len(batch))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := runAsync(ctx, options(t, db, path))
	held.Blocker.WaitForWaiter(t) // the batch is in flight
	cancel()
	held.Blocker.Release(t)
	r := <-done
	if !errors.Is(r.err, ErrInterrupted) || IsInit(r.err) {
		t.Fatalf("err = %v, want interrupted", r.err)
	}
	if r.res.Done != end || !strings.Contains(r.err.Error(), "interrupted at row ") {
		t.Errorf("stopped at row %d (%v), want %d: after the batch in flight", r.res.Done, r.err, end)
	}
	if next, _, err := Progress(CheckpointPath(path)); err != nil || next != end {
		t.Errorf("checkpoint at row %d (%v), want %d", next, err, end)
	}
	keys := appliertest.Keys(t, db.SQL, manifest.TableSessionTokens)
	for _, row := range batch {
		if keys[hex.EncodeToString(row.ID)] {
			t.Errorf("session %x of the batch in flight is still there: the batch was not committed", row.ID[:4])
		}
	}
	if next := f.Rows[end]; !keys[hex.EncodeToString(next.ID)] {
		t.Errorf("session %x after the batch in flight was deleted", next.ID[:4])
	}
	if _, err := Run(context.Background(), options(t, db, path)); err != nil {
		t.Fatal(err)
	}
	f.Check(t)
}

// lineHook is a log writer that calls fn once, the first time the log
// contains match.
type lineHook struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	match string
	fn    func()
}

func (h *lineHook) Write(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.buf.Write(p)
	if h.fn != nil && strings.Contains(h.buf.String(), h.match) {
		h.fn()
		h.fn = nil
	}
	return len(p), nil
}

func (h *lineHook) String() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.buf.String()
}

// checkRetriedExactly: a run that met a transient error mid-batch and
// retried it ends exactly as an uninterrupted one: every table (all nine,
// checksummed), and no listed row counted as gone or skipped.
func checkRetriedExactly(t *testing.T, f *appliertest.Fixture, r runResult, log string, code string) {
	t.Helper()
	if r.err != nil {
		t.Fatalf("apply: %v\n%s", r.err, log)
	}
	if r.res.Retries == 0 || !strings.Contains(log, "transient error") || !strings.Contains(log, code) {
		t.Errorf("%d retries; want the batch retried after error %s; log:\n%s", r.res.Retries, code, log)
	}
	f.Check(t)
	_, tot := r.res.Totals()
	if tot.Gone != 0 || tot.Skipped != 0 || !r.res.Complete {
		t.Errorf("after the retry: %+v, complete %v; want every row deleted once", tot, r.res.Complete)
	}
	if got, want := f.DB.Checksums(t), uninterrupted(t, inflightSeed); !equalMaps(got, want) {
		t.Errorf("tables differ from an uninterrupted run:\n got %v\nwant %v", got, want)
	}
}

// TestRetriesLockWaitTimeout: a real lock wait timeout (1205) mid-batch,
// induced by a second connection holding a row of the batch, is retried on
// a new connection, and the run ends exactly as an uninterrupted one.
func TestRetriesLockWaitTimeout(t *testing.T) {
	f, path, held := holdInflight(t)
	blk := held.Blocker
	o := options(t, f.DB, path)
	o.DSN.Params = map[string]string{"innodb_lock_wait_timeout": "1"} // a session variable
	// The blocker lets go once apply has hit the timeout and logged its retry.
	log := &lineHook{match: "transient error", fn: func() { blk.Release(t) }}
	o.Log = log
	res, err := Run(context.Background(), o)
	checkRetriedExactly(t, f, runResult{res, err}, log.String(), "1205")
}

// TestRetriesDeadlock: a real deadlock (1213) mid-batch: the batch holds the
// first of its rows and waits for its last, which a second connection holds;
// that connection then asks for the first. InnoDB rolls back the lighter
// transaction, apply's (the other has written hundreds of rows), and apply
// retries the batch on a new connection once the other lets go. The run ends
// exactly as an uninterrupted one.
func TestRetriesDeadlock(t *testing.T) {
	f, path, held := holdInflight(t)
	blk := held.Blocker
	// Weight: InnoDB picks as the victim the transaction that changed fewer
	// rows; these inserts are rolled back with the blocker.
	blk.Exec(t, "INSERT INTO keyFetchTokens (tokenId, authKey, uid, keyBundle, createdAt) "+
		"SELECT UNHEX(SHA2(seq, 256)), UNHEX(SHA2(seq, 256)), UNHEX(MD5(seq)), REPEAT('k', 96), seq FROM seq_1_to_500")
	log := &lineHook{}
	o := options(t, f.DB, path)
	o.Log = log
	done := runAsync(context.Background(), o)
	blk.WaitForWaiter(t) // apply holds the batch's first rows and waits for the last
	if err := blk.LockSession(held.First.ID); err != nil {
		t.Fatalf("the test's connection was chosen as the deadlock victim (or failed): %v", err)
	}
	blk.Release(t)
	checkRetriedExactly(t, f, <-done, log.String(), "1213")
}
