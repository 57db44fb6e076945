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
// holds about as many unverifiedTokens rows as a fifth of its sessions; in a
// sparse one (a few expired sessions spread over the whole table) it could
// hold a large part of the table, locked against the service verifying its
// sessions. Session keys are random, so the rows a range holds are about its
// share of the key space times the table's rows. A batch counts its range
// only if that estimate is at most its own number of sessions; and if a
// range is found to hold far more (keys not spread evenly, or the estimate
// stale), no later batch of the run counts one.
type rangeCount struct {
	tableRows float64 // estimated rows of unverifiedTokens; 0: unknown, never count
	off       bool
}

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
	for _, r := range rows {
		if len(r.ID) != manifest.IDLen {
			return false
		}
	}
	return rc.expected(rows) <= float64(len(rows))
}

// observe takes the rows a batch of n sessions found in its range; a range
// holding more than four times the batch (and more than a handful) turns
// range counting off for the rest of the run.
func (rc *rangeCount) observe(n int, found int64) {
	if rc != nil && found > 4*int64(n)+16 {
		rc.off = true
	}
}
