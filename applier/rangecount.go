package applier

import (
	"context"
	"database/sql"
	"encoding/binary"
	"math"

	"prune-tokens/manifest"
)

// rangeCount decides, batch by batch, whether a batch of token-age sessions
// may learn how many unverifiedTokens rows it deleted by counting the
// unverifiedTokens rows in the range of keys it spans, before and after its
// DELETE (deleteGuardedSessions), instead of reading its sessions first
// (deleteSessionsFast).
//
// Counting a range costs a short sequential scan and share-locks the range
// until the batch commits, so it must hold few rows: in a dense manifest
// (most sessions expired, the first prunes of a large table) a batch's range
// holds fewer unverifiedTokens rows than the batch has sessions (only some
// sessions have one); in a
// sparse one (a few expired sessions spread over the whole table) it could
// hold a large part of the table, locked against the service verifying its
// sessions. Session keys are random, so the rows a range holds are about its
// share of the key space times the table's rows. A batch counts its range
// only if that estimate is at most its own number of sessions; and if a
// range is found to hold far more (keys not spread evenly, or the estimate
// stale), no later batch of the run counts one.
//
// A batch that counted its range but deleted fewer sessions than listed
// (rows changed since the plan) then had to read which are still there:
// the DELETE and a read, where reading first costs a read and a DELETE of
// fewer rows. Changed rows tend to come together (a manifest applied late,
// a busy account), so after such a batch the next ones read first: one,
// then twice as many after each further short batch, up to 64, until a
// batch that counted its range deletes every listed session again.
type rangeCount struct {
	tableRows float64 // estimated rows of unverifiedTokens; 0: unknown, never count
	off       bool
	// readFirst batches still to read first; backoff is how many read
	// first after the last short batch.
	readFirst, backoff int
}

const maxReadFirst = 64

// newRangeCount reads the server's estimate of the unverifiedTokens rows
// (InnoDB's, from its statistics: no scan). Without one, batches read first.
func newRangeCount(ctx context.Context, q querier) *rangeCount {
	rc := &rangeCount{}
	rows, err := q.QueryContext(ctx, "SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'unverifiedTokens'")
	if err != nil {
		return rc
	}
	defer rows.Close()
	var n sql.NullInt64
	if rows.Next() && rows.Scan(&n) == nil && n.Valid {
		// An empty table's estimate is 0; count it as one row, so that a
		// batch still qualifies.
		rc.tableRows = float64(max(n.Int64, 1))
	}
	return rc
}

// expected is the estimated number of unverifiedTokens rows in the key
// range of rows, from the share of the key space between its lowest and
// highest keys' leading 8 bytes.
func (rc *rangeCount) expected(rows []manifest.Row) float64 {
	first, last := keyRange(rows)
	lo, hi := binary.BigEndian.Uint64(first[:8]), binary.BigEndian.Uint64(last[:8])
	share := (float64(hi-lo) + 1) / math.Exp2(64)
	return share * rc.tableRows
}

// allows says whether the batch rows may count its range.
func (rc *rangeCount) allows(rows []manifest.Row) bool {
	if rc == nil || rc.off || rc.tableRows == 0 || len(rows) == 0 {
		return false
	}
	if rc.readFirst > 0 {
		rc.readFirst--
		return false
	}
	for _, r := range rows {
		if len(r.ID) != manifest.IDLen {
			return false
		}
	}
	return rc.expected(rows) <= float64(len(rows))
}

// observe takes what a batch of n sessions that counted its range found:
// the rows in its range (more than four times the batch, and more than a
// handful, turns range counting off for the rest of the run) and whether it
// deleted fewer sessions than listed.
func (rc *rangeCount) observe(n int, found int64, short bool) {
	if rc == nil {
		return
	}
	if found > 4*int64(n)+16 {
		rc.off = true
	}
	if short {
		rc.backoff = min(max(2*rc.backoff, 1), maxReadFirst)
		rc.readFirst = rc.backoff
	} else {
		rc.backoff = 0
	}
}
