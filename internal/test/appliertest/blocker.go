package appliertest

import (
	"bytes"
	"context"
	"database/sql"
	"slices"
	"testing"
	"time"

	"prune-tokens/manifest"
)

// Blocker is a second client in the middle of a transaction, as the service
// would be: it takes row locks that apply's batches must wait for, so a test
// can act while a batch is in flight (signal it, time it out, deadlock it).
type Blocker struct {
	db   *sql.DB
	conn *sql.Conn
	tx   *sql.Tx
	id   int64 // its connection id
}

// NewBlocker opens a connection of db and begins a transaction on it; the
// transaction is rolled back when the test ends, if not before.
func NewBlocker(t testing.TB, db *sql.DB) *Blocker {
	t.Helper()
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		conn.Close()
		t.Fatal(err)
	}
	b := &Blocker{db: db, conn: conn, tx: tx}
	if err := tx.QueryRow("SELECT CONNECTION_ID()").Scan(&b.id); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = b.tx.Rollback()
		b.conn.Close()
	})
	return b
}

// Exec runs a statement in the blocker's transaction.
func (b *Blocker) Exec(t testing.TB, q string, args ...any) {
	t.Helper()
	if _, err := b.tx.Exec(q, args...); err != nil {
		t.Fatalf("blocker: %s: %v", q, err)
	}
}

// LockSession locks one sessionTokens row for update (waiting if another
// transaction holds it) and returns the statement's error.
func (b *Blocker) LockSession(tokenID []byte) error {
	var id []byte
	return b.tx.QueryRow("SELECT tokenId FROM sessionTokens WHERE tokenId = ? FOR UPDATE", tokenID).Scan(&id)
}

// WaitForWaiter returns once another transaction waits for one of the
// blocker's locks (a minute at most: a hang is a failure).
func (b *Blocker) WaitForWaiter(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		var n int
		// Matched by connection: a transaction that has only locked rows
		// shows different ids in INNODB_TRX and INNODB_LOCK_WAITS.
		if err := b.db.QueryRow(`SELECT COUNT(*) FROM information_schema.INNODB_LOCK_WAITS w
			JOIN information_schema.INNODB_TRX b ON b.trx_id = w.blocking_trx_id WHERE b.trx_mysql_thread_id = ?`, b.id).Scan(&n); err != nil {
			t.Fatalf("blocker: read lock waits: %v", err)
		}
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("blocker: nothing waited for its locks within a minute")
		}
		// InnoDB refreshes these tables only when they were not read in
		// the last 100 ms: polling faster would see a stale picture forever.
		time.Sleep(150 * time.Millisecond)
	}
}

// Release rolls the blocker's transaction back, freeing its locks.
func (b *Blocker) Release(t testing.TB) {
	t.Helper()
	if err := b.tx.Rollback(); err != nil && err != sql.ErrTxDone {
		t.Errorf("blocker: rollback: %v", err)
	}
}

// HeldBatch is a batch of sessions whose last row, by key, a Blocker holds:
// apply's batch takes the rows in key order, so it waits there holding the
// rows before it.
type HeldBatch struct {
	Start       int            // manifest index of the batch's first row
	Rows        []manifest.Row // the batch, in manifest order
	First, Last manifest.Row   // lowest and highest key
	Blocker     *Blocker
}

// HoldFirstSessionBatch locks, from a new Blocker, the last row of the first
// batch apply makes, with batches of size, of the sessions of stage.
func (f *Fixture) HoldFirstSessionBatch(t testing.TB, stage string, size int) *HeldBatch {
	t.Helper()
	start, rows := f.FirstBatch(stage, manifest.TableSessionTokens, size)
	if len(rows) < 2 {
		t.Fatalf("fixture: the first %s batch has %d rows", stage, len(rows))
	}
	byKey := func(a, b manifest.Row) int { return bytes.Compare(a.Key(), b.Key()) }
	h := &HeldBatch{Start: start, Rows: rows, First: slices.MinFunc(rows, byKey), Last: slices.MaxFunc(rows, byKey),
		Blocker: NewBlocker(t, f.DB.SQL)}
	if err := h.Blocker.LockSession(h.Last.ID); err != nil {
		t.Fatalf("blocker: lock session: %v", err)
	}
	return h
}
