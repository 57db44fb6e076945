package applier

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"

	"prune-tokens/manifest"
)

// keepRule says how many sessions of an account must stay newer than a
// max-sessions session for it to go: the plan's --maxSessions. A manifest
// whose flags do not record it (written by hand or by an older tool) keeps
// what its plan meant to keep of each account: sessions - to_delete, never
// fewer than maxSessions.
type keepRule func(uid []byte) int64

func keepRuleOf(m *manifest.Meta) keepRule {
	if n, ok := m.MaxSessions(); ok && n > 0 {
		return func([]byte) int64 { return n }
	}
	keep := make(map[string]int64, len(m.TopAccounts))
	for _, a := range m.TopAccounts {
		if uid, err := hex.DecodeString(a.UID); err == nil {
			keep[string(uid)] = a.Sessions - a.ToDelete
		}
	}
	return func(uid []byte) int64 { return keep[string(uid)] }
}

// rankAtDelete is the max-sessions guard that the database decides at
// delete time: of the eligible rows (still as planned), it keeps back each
// session that has fewer than keep(uid) sessions of its account newer than
// it now, so logouts since the plan never take an account below its limit.
// It returns the rows that may go, with their current state, and how many
// it kept back. With lock, the reads hold the accounts' sessions until the
// transaction ends (rankCutSQL).
func rankAtDelete(ctx context.Context, q querier, eligible []manifest.Row, cur []current, keep keepRule, lock bool) ([]manifest.Row, []current, int64, error) {
	if keep == nil {
		return eligible, cur, 0, nil
	}
	cuts := map[string]*rankCut{}
	for _, r := range eligible {
		if _, done := cuts[string(r.UID)]; done {
			continue
		}
		n := keep(r.UID)
		if n <= 0 {
			cuts[string(r.UID)] = nil // nothing to keep: no guard
			continue
		}
		query, args := rankCutSQL(r.UID, n, lock)
		var c rankCut
		err := queryRow(ctx, q, query, args, &c.createdAt, &c.id)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			c.none = true // fewer than n sessions: none may go
		case err != nil:
			return nil, nil, 0, fmt.Errorf("rank the sessions of account %x: %w", r.UID, err)
		}
		cuts[string(r.UID)] = &c
	}
	var goes []manifest.Row
	var goesCur []current
	var kept int64
	for i, r := range eligible {
		if c := cuts[string(r.UID)]; c != nil && !c.older(r) {
			kept++
			continue
		}
		goes = append(goes, r)
		goesCur = append(goesCur, cur[i])
	}
	return goes, goesCur, kept, nil
}

// rankCut is an account's keep-th newest session now.
type rankCut struct {
	createdAt int64
	id        []byte
	none      bool // the account has fewer sessions than it must keep
}

// older says r ranks below the cut, so enough newer sessions stay.
func (c *rankCut) older(r manifest.Row) bool {
	if c.none {
		return false
	}
	if r.CreatedAt != c.createdAt {
		return r.CreatedAt < c.createdAt
	}
	return bytes.Compare(r.ID, c.id) < 0
}

// queryRow runs a one-row query through q (a transaction or a connection).
func queryRow(ctx context.Context, q querier, query string, args []any, dst ...any) error {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return err
		}
		return sql.ErrNoRows
	}
	if err := rows.Scan(dst...); err != nil {
		return err
	}
	return rows.Close()
}
