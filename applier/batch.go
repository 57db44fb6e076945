package applier

import (
	"bytes"
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/go-sql-driver/mysql"

	"prune-tokens/manifest"
)

// Counts is what happened to listed rows: every listed row ends up in exactly
// one of Deleted, Gone and Skipped. In a dry run they say what would happen.
type Counts struct {
	Deleted int64 // listed rows deleted
	Gone    int64 // listed rows already gone from the table
	Skipped int64 // listed rows a guard kept: not the planned row any more, or a token-age session that has a device now
	// Rows of other tables deleted together with their sessions.
	Unverified int64 // unverifiedTokens rows
	Devices    int64 // devices rows (max-sessions only)
}

// Processed is the number of listed rows accounted for.
func (c Counts) Processed() int64 { return c.Deleted + c.Gone + c.Skipped }

func (c *Counts) add(o Counts) {
	c.Deleted += o.Deleted
	c.Gone += o.Gone
	c.Skipped += o.Skipped
	c.Unverified += o.Unverified
	c.Devices += o.Devices
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// current is what the guard read found for one listed key.
type current struct {
	uid        []byte
	createdAt  int64
	device     bool // sessionTokens: a device with the same uid and sessionTokenId exists
	unverified bool // sessionTokens: an unverifiedTokens row exists
}

// sortByKey orders a batch by primary key, so consecutive batches and the
// statements of one batch walk the clustered index in order.
func sortByKey(rows []manifest.Row) []manifest.Row {
	out := slices.Clone(rows)
	byKey := func(a, b manifest.Row) int { return bytes.Compare(a.Key(), b.Key()) }
	// A format-2 manifest lists most sections in key order already, and
	// checking the order costs far less than sorting.
	if !slices.IsSortedFunc(out, byKey) {
		slices.SortFunc(out, byKey)
	}
	return out
}

// guardRead reads the current state of the listed rows; with lock set it
// locks them (and, for sessions, their devices and unverifiedTokens rows).
func guardRead(ctx context.Context, q querier, sec manifest.Section, rows []manifest.Row, lock bool) (map[string]current, error) {
	var query string
	var args []any
	if sec.Table == manifest.TableSessionTokens {
		query, args = selectSessionsSQL(rows, lock)
	} else {
		var err error
		if query, args, err = selectRowsSQL(sec.Table, rows, lock); err != nil {
			return nil, err
		}
	}
	res, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", sec.Table, err)
	}
	defer res.Close()
	found := make(map[string]current, len(rows))
	for res.Next() {
		var id []byte
		var c current
		if sec.Table == manifest.TableSessionTokens {
			var dev, unv []byte
			if err := res.Scan(&id, &c.uid, &c.createdAt, &dev, &unv); err != nil {
				return nil, fmt.Errorf("read %s: %w", sec.Table, err)
			}
			c.device, c.unverified = dev != nil, unv != nil
		} else if err := res.Scan(&id, &c.uid, &c.createdAt); err != nil {
			return nil, fmt.Errorf("read %s: %w", sec.Table, err)
		}
		key := string(id)
		if sec.Table == manifest.TableUnblockCodes {
			key = string(c.uid) + key
		}
		prev, dup := found[key]
		// A join cannot repeat a session (devices is unique on (uid,
		// sessionTokenId)), but be safe: any device counts.
		if dup {
			c.device = c.device || prev.device
			c.unverified = c.unverified || prev.unverified
		}
		found[key] = c
	}
	if err := res.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", sec.Table, err)
	}
	return found, nil
}

// classify decides each listed row's fate from the guard read: gone when
// missing, skipped when its uid or createdAt differ from the plan or when a
// token-age session has a device, eligible otherwise.
func classify(sec manifest.Section, rows []manifest.Row, found map[string]current) (eligible []manifest.Row, cur []current, c Counts) {
	for _, r := range rows {
		f, ok := found[string(r.Key())]
		switch {
		case !ok:
			c.Gone++
		case !bytes.Equal(f.uid, r.UID) || f.createdAt != r.CreatedAt:
			c.Skipped++
		case sec.Stage == manifest.StageTokenAge && sec.Table == manifest.TableSessionTokens && f.device:
			c.Skipped++
		default:
			eligible = append(eligible, r)
			cur = append(cur, f)
		}
	}
	return eligible, cur, c
}

// outcome is what one batch did: its counts, and the listed rows no longer
// in their table once it committed (deleted by it or already gone), whose
// sessions leave the Redis session cache.
type outcome struct {
	Counts
	removed []manifest.Row
	// took is how long the attempt that committed took (set by run.batch).
	took time.Duration
}

// removedRows are the rows a committed batch leaves out of their table: the
// eligible ones it deleted, and the listed ones the guard read did not find
// (already gone).
func removedRows(eligible, rows []manifest.Row, found map[string]current) []manifest.Row {
	removed := slices.Clip(eligible)
	for _, r := range rows {
		if _, ok := found[string(r.Key())]; !ok {
			removed = append(removed, r)
		}
	}
	return removed
}

// deleteBatch deletes one batch in one transaction on conn: guard read with
// row locks, then deletes by primary key of only the rows that passed.
// beforeCommit runs just before COMMIT; its error rolls the batch back.
func deleteBatch(ctx context.Context, conn *sql.Conn, sec manifest.Section, rows []manifest.Row, keep keepRule, beforeCommit func() error) (out outcome, err error) {
	rows = sortByKey(rows)
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return outcome{}, fmt.Errorf("begin transaction: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	found, err := guardRead(ctx, tx, sec, rows, true)
	if err != nil {
		return outcome{}, err
	}
	eligible, cur, c := classify(sec, rows, found)
	if sec.Stage == manifest.StageMaxSessions {
		var kept int64
		if eligible, cur, kept, err = rankAtDelete(ctx, tx, eligible, cur, keep, true); err != nil {
			return outcome{}, err
		}
		c.Skipped += kept
	}
	if len(eligible) > 0 {
		if sec.Table == manifest.TableSessionTokens {
			var withUnverified, withDevice []manifest.Row
			for i, r := range eligible {
				if cur[i].unverified {
					withUnverified = append(withUnverified, r)
				}
				if cur[i].device {
					withDevice = append(withDevice, r)
				}
			}
			if len(withUnverified) > 0 {
				q, args := deleteUnverifiedSQL(withUnverified)
				if c.Unverified, err = exec(ctx, tx, "unverifiedTokens", q, args); err != nil {
					return outcome{}, err
				}
			}
			// Only max-sessions gets here with devices: token-age skipped them.
			if len(withDevice) > 0 {
				q, args := deleteDevicesSQL(withDevice)
				if c.Devices, err = exec(ctx, tx, "devices", q, args); err != nil {
					return outcome{}, err
				}
			}
		}
		q, args, err := deleteRowsSQL(sec.Table, eligible)
		if err != nil {
			return outcome{}, err
		}
		n, err := exec(ctx, tx, sec.Table, q, args)
		if err != nil {
			return outcome{}, err
		}
		// The rows are locked, so n is len(eligible) on InnoDB; an engine
		// without row locks may have lost some to a concurrent delete.
		c.Deleted = n
		c.Gone += int64(len(eligible)) - n
	}
	if beforeCommit != nil {
		if err := beforeCommit(); err != nil {
			return outcome{}, err
		}
	}
	if err := tx.Commit(); err != nil {
		return outcome{}, fmt.Errorf("commit: %w", err)
	}
	return outcome{Counts: c, removed: removedRows(eligible, rows, found)}, nil
}

// classifyBatch is the dry run's read-only version of deleteBatch.
func classifyBatch(ctx context.Context, q querier, sec manifest.Section, rows []manifest.Row, keep keepRule) (Counts, error) {
	rows = sortByKey(rows)
	found, err := guardRead(ctx, q, sec, rows, false)
	if err != nil {
		return Counts{}, err
	}
	eligible, cur, c := classify(sec, rows, found)
	if sec.Stage == manifest.StageMaxSessions {
		var kept int64
		if eligible, cur, kept, err = rankAtDelete(ctx, q, eligible, cur, keep, false); err != nil {
			return Counts{}, err
		}
		c.Skipped += kept
	}
	c.Deleted = int64(len(eligible))
	for _, f := range cur {
		if f.unverified {
			c.Unverified++
		}
		if f.device {
			c.Devices++
		}
	}
	return c, nil
}

func exec(ctx context.Context, q querier, table, query string, args []any) (int64, error) {
	res, err := q.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, fmt.Errorf("delete from %s: %w", table, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("delete from %s: %w", table, err)
	}
	return n, nil
}

// deleteBatchFast deletes one batch in one transaction in two round trips,
// each carrying several statements (the connection allows them): where the
// plain delete loop sends BEGIN, DELETE, DELETE, COMMIT, it sends
//
//   - for sessions: START TRANSACTION and the joined locking read of the
//     listed sessions and their devices; the rows are classified as in
//     deleteBatch; then one DELETE of the eligible sessions with their
//     unverifiedTokens rows (and, in max-sessions, devices), and COMMIT;
//   - for the other tables: START TRANSACTION and a DELETE of the rows
//     still exactly as planned (deleteExactSQL); only if it deleted fewer
//     than listed, a read of the keys still there (kept by the guard; the
//     rest were already gone); then COMMIT.
//
// beforeCommit runs before the round trip that commits; its error, like
// any other, rolls the transaction back.
func deleteBatchFast(ctx context.Context, conn *sql.Conn, sec manifest.Section, rows []manifest.Row, keep keepRule, beforeCommit func() error) (out outcome, err error) {
	rows = sortByKey(rows)
	open := false
	defer func() {
		if err != nil && open {
			// Never leave a transaction open on a connection that may be
			// used again: a later START TRANSACTION would commit it.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), statementSlack)
			if _, rerr := conn.ExecContext(rctx, "ROLLBACK"); rerr != nil {
				err = fmt.Errorf("%w (and rollback: %v)", err, driver.ErrBadConn)
			}
			cancel()
		}
	}()
	if sec.Table == manifest.TableSessionTokens && sec.Stage == manifest.StageTokenAge {
		return deleteGuardedSessions(ctx, conn, rows, beforeCommit, &open)
	}
	if sec.Table == manifest.TableSessionTokens {
		return deleteSessionsFast(ctx, conn, sec, rows, keep, beforeCommit, &open)
	}
	q, args, err := deleteExactSQL(sec.Table, rows)
	if err != nil {
		return outcome{}, err
	}
	open = true
	affected, err := multiExec(ctx, conn, "START TRANSACTION; "+q, args)
	if err != nil {
		return outcome{}, fmt.Errorf("delete from %s: %w", sec.Table, err)
	}
	c := Counts{Deleted: affected[len(affected)-1]}
	removed, err := settleShort(ctx, conn, sec.Table, rows, &c)
	if err != nil {
		return outcome{}, err
	}
	if err := commit(ctx, conn, beforeCommit); err != nil {
		return outcome{}, err
	}
	open = false
	return outcome{Counts: c, removed: removed}, nil
}

// settleShort completes the counts of a batch whose DELETE removed
// c.Deleted of rows: when that is fewer than listed, it reads, in the same
// transaction, which listed keys are still there (kept by a guard: the
// rest were already gone). It returns the listed rows no longer in table.
func settleShort(ctx context.Context, conn *sql.Conn, table string, rows []manifest.Row, c *Counts) ([]manifest.Row, error) {
	short := int64(len(rows)) - c.Deleted
	if short <= 0 {
		return rows, nil
	}
	kept, err := presentKeys(ctx, conn, table, rows)
	if err != nil {
		return nil, err
	}
	c.Skipped = int64(len(kept))
	if c.Skipped > short {
		return nil, fmt.Errorf("%s: %d listed rows still there after deleting %d of %d", table, c.Skipped, c.Deleted, len(rows))
	}
	c.Gone = short - c.Skipped
	var removed []manifest.Row
	for _, r := range rows {
		if !kept[string(r.Key())] {
			removed = append(removed, r)
		}
	}
	return removed, nil
}

// commit makes sure, through beforeCommit, that the previous batch's
// checkpoint record is on disk, then commits.
func commit(ctx context.Context, conn *sql.Conn, beforeCommit func() error) error {
	if beforeCommit != nil {
		if err := beforeCommit(); err != nil {
			return err
		}
	}
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// deleteGuardedSessions is deleteBatchFast for token-age sessions. The
// first round trip deletes every listed session still exactly as planned
// and without a device, with its unverifiedTokens row, and tells how many
// of each went (guardedSessionsSQL); when every listed session went, the
// second commits: the round trips of the plain delete loop's BEGIN and
// COMMIT. Only a batch with fewer deleted than listed reads, before it
// commits, which listed sessions are still there: those a guard kept; the
// rest were already gone.
func deleteGuardedSessions(ctx context.Context, conn *sql.Conn, rows []manifest.Row, beforeCommit func() error, open *bool) (outcome, error) {
	q, err := inlineHex(joinStatements(guardedSessionsSQL(rows)))
	if err != nil {
		return outcome{}, err
	}
	*open = true
	affected, unverified, err := countedDelete(ctx, conn, "START TRANSACTION; "+q)
	if err != nil {
		return outcome{}, err
	}
	c := Counts{Deleted: affected - unverified, Unverified: unverified}
	// Each listed session has at most one unverifiedTokens row (its key is
	// the session's), and only a deleted session's goes with it.
	if c.Unverified < 0 || c.Unverified > c.Deleted || c.Deleted > int64(len(rows)) {
		return outcome{}, fmt.Errorf("sessionTokens: the batch's counts do not add up (%d rows deleted, %d of them unverifiedTokens rows, %d sessions listed); rolled back",
			affected, unverified, len(rows))
	}
	removed, err := settleShort(ctx, conn, manifest.TableSessionTokens, rows, &c)
	if err != nil {
		return outcome{}, err
	}
	if err := commit(ctx, conn, beforeCommit); err != nil {
		return outcome{}, err
	}
	*open = false
	return outcome{Counts: c, removed: removed}, nil
}

// countedDelete sends the guarded batch's round trip (its values written
// in) and reads its counts: the rows the DELETE removed, and how many of
// them were unverifiedTokens rows.
func countedDelete(ctx context.Context, conn *sql.Conn, q string) (affected, unverified int64, err error) {
	res, err := conn.QueryContext(ctx, q)
	if err != nil {
		return 0, 0, fmt.Errorf("delete from sessionTokens: %w", err)
	}
	defer res.Close()
	n := 0
	for {
		for res.Next() {
			if err := res.Scan(&affected, &unverified); err != nil {
				return 0, 0, fmt.Errorf("delete from sessionTokens: %w", err)
			}
			n++
		}
		if !res.NextResultSet() {
			break
		}
	}
	if err := res.Err(); err != nil {
		return 0, 0, fmt.Errorf("delete from sessionTokens: %w", err)
	}
	if n != 1 {
		return 0, 0, fmt.Errorf("sessionTokens: %d result rows for the batch's counts, want 1; rolled back", n)
	}
	return affected, unverified, nil
}

// deleteSessionsFast is deleteBatchFast for a section of max-sessions
// sessions, whose devices go with them (so a device guard does not apply
// and the DELETE's count mixes three tables): a locked read classifies the
// rows, then one DELETE removes the eligible ones with their dependants.
func deleteSessionsFast(ctx context.Context, conn *sql.Conn, sec manifest.Section, rows []manifest.Row, keep keepRule, beforeCommit func() error, open *bool) (outcome, error) {
	q, err := inlineHex(selectSessionsForDeleteSQL(rows))
	if err != nil {
		return outcome{}, err
	}
	*open = true
	res, err := conn.QueryContext(ctx, "START TRANSACTION; "+q)
	if err != nil {
		return outcome{}, fmt.Errorf("read sessionTokens: %w", err)
	}
	found := make(map[string]current, len(rows))
	devices := map[string]int64{}
	for {
		for res.Next() {
			var id, dev []byte
			var c current
			if err := res.Scan(&id, &c.uid, &c.createdAt, &dev); err != nil {
				res.Close()
				return outcome{}, fmt.Errorf("read sessionTokens: %w", err)
			}
			if dev != nil {
				devices[string(id)]++
			}
			c.device = devices[string(id)] > 0
			found[string(id)] = c
		}
		if !res.NextResultSet() {
			break
		}
	}
	if err := res.Err(); err != nil {
		res.Close()
		return outcome{}, fmt.Errorf("read sessionTokens: %w", err)
	}
	res.Close()
	eligible, cur, c := classify(sec, rows, found)
	if sec.Stage == manifest.StageMaxSessions {
		var kept int64
		if eligible, _, kept, err = rankAtDelete(ctx, conn, eligible, cur, keep, true); err != nil {
			return outcome{}, err
		}
		c.Skipped += kept
	}
	for _, r := range eligible {
		c.Devices += devices[string(r.ID)]
	}
	if beforeCommit != nil {
		if err := beforeCommit(); err != nil {
			return outcome{}, err
		}
	}
	stmt, args := "COMMIT", []any(nil)
	if len(eligible) > 0 {
		q, a := deleteSessionsSQL(sec.Stage, eligible)
		stmt, args = q+"; COMMIT", a
	}
	affected, err := multiExec(ctx, conn, stmt, args)
	if err != nil {
		return outcome{}, fmt.Errorf("delete from sessionTokens: %w", err)
	}
	*open = false
	if len(eligible) > 0 {
		// The eligible sessions and their devices were locked by the read,
		// so the DELETE removed each of them; what else it removed is their
		// unverifiedTokens rows (at most one a session).
		c.Deleted = int64(len(eligible))
		c.Unverified = affected[0] - c.Deleted - c.Devices
		if c.Unverified < 0 || c.Unverified > c.Deleted {
			return outcome{}, fmt.Errorf("sessionTokens: the DELETE of %d locked sessions with %d devices removed %d rows (committed; the counts of this batch are unreliable)",
				c.Deleted, c.Devices, affected[0])
		}
	}
	return outcome{Counts: c, removed: removedRows(eligible, rows, found)}, nil
}

// multiExec runs statements separated by ";" in one round trip, their
// values written in as literals (inlineHex), and returns each one's affected
// rows (database/sql reports only the last's).
func multiExec(ctx context.Context, conn *sql.Conn, q string, args []any) ([]int64, error) {
	q, err := inlineHex(q, args)
	if err != nil {
		return nil, err
	}
	var affected []int64
	err = conn.Raw(func(dc any) error {
		ex, ok := dc.(driver.ExecerContext)
		if !ok {
			return errors.New("the driver cannot execute statements directly")
		}
		res, err := ex.ExecContext(ctx, q, nil)
		if err != nil {
			return err
		}
		r, ok := res.(mysql.Result)
		if !ok {
			return errors.New("the driver does not report each statement's affected rows")
		}
		affected = r.AllRowsAffected()
		return nil
	})
	if err == nil && len(affected) == 0 {
		err = errors.New("no statement result")
	}
	return affected, err
}

// presentKeys reads which listed rows are still in the table, by key.
func presentKeys(ctx context.Context, q querier, table string, rows []manifest.Row) (map[string]bool, error) {
	query, args, err := presentKeysSQL(table, rows)
	if err != nil {
		return nil, err
	}
	if query, err = inlineHex(query, args); err != nil {
		return nil, err
	}
	res, err := q.QueryContext(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("read %s rows kept by a guard: %w", table, err)
	}
	defer res.Close()
	kept := make(map[string]bool)
	withUID := table == manifest.TableUnblockCodes
	for res.Next() {
		var a, b []byte
		dst := []any{&a}
		if withUID {
			dst = append(dst, &b)
		}
		if err := res.Scan(dst...); err != nil {
			return nil, fmt.Errorf("read %s rows kept by a guard: %w", table, err)
		}
		kept[string(append(a, b...))] = true
	}
	if err := res.Err(); err != nil {
		return nil, fmt.Errorf("read %s rows kept by a guard: %w", table, err)
	}
	return kept, nil
}
