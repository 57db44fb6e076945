package main

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"fmt"
	"sort"
	"strings"

	"prune-tokens/manifest"
)

// primaryKeys are the primary-key columns of the nine FxA tables, as in
// internal/schema/schema.sql.
var primaryKeys = map[string][]string{
	"sessionTokens":        {"tokenId"},
	"unverifiedTokens":     {"tokenId"},
	"devices":              {"uid", "id"},
	"accountResetTokens":   {"tokenId"},
	"passwordForgotTokens": {"tokenId"},
	"passwordChangeTokens": {"tokenId"},
	"keyFetchTokens":       {"tokenId"},
	"unblockCodes":         {"uid", "unblockCodeHash"},
	"signinCodes":          {"hash"},
}

// snapshot is every row of the nine tables: per table, primary key (its
// columns' bytes, concatenated) to a SHA-256 of the whole row, so that two
// snapshots show which rows went and whether any other row changed.
type snapshot struct {
	rows map[string]map[string][sha256.Size]byte
	// devicesOf maps a session (uid + sessionTokenId) to its devices' keys:
	// max-sessions deletes them with the session.
	devicesOf map[string][]string
}

func (s *snapshot) count(table string) int { return len(s.rows[table]) }

func (s *snapshot) total() int {
	n := 0
	for _, rows := range s.rows {
		n += len(rows)
	}
	return n
}

// takeSnapshot reads every row of every table.
func takeSnapshot(ctx context.Context, db *sql.DB) (*snapshot, error) {
	s := &snapshot{rows: map[string]map[string][sha256.Size]byte{}, devicesOf: map[string][]string{}}
	for _, table := range tables {
		if err := s.read(ctx, db, table); err != nil {
			return nil, fmt.Errorf("read %s: %w", table, err)
		}
	}
	return s, nil
}

func (s *snapshot) read(ctx context.Context, db *sql.DB, table string) error {
	rows, err := db.QueryContext(ctx, "SELECT * FROM `"+table+"`")
	if err != nil {
		return err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return err
	}
	index := map[string]int{}
	for i, c := range cols {
		index[c] = i
	}
	var pk []int
	for _, c := range primaryKeys[table] {
		i, ok := index[c]
		if !ok {
			return fmt.Errorf("no column %s", c)
		}
		pk = append(pk, i)
	}
	vals := make([]sql.RawBytes, len(cols))
	dst := make([]any, len(cols))
	for i := range vals {
		dst[i] = &vals[i]
	}
	out := map[string][sha256.Size]byte{}
	var buf []byte
	for rows.Next() {
		if err := rows.Scan(dst...); err != nil {
			return err
		}
		var key strings.Builder
		for _, i := range pk {
			key.Write(vals[i])
		}
		// Each column length-prefixed, NULL apart from empty.
		buf = buf[:0]
		for _, v := range vals {
			if v == nil {
				buf = append(buf, 0xff)
				continue
			}
			buf = binary.AppendUvarint(append(buf, 0), uint64(len(v)))
			buf = append(buf, v...)
		}
		out[key.String()] = sha256.Sum256(buf)
		if table == "devices" {
			session := string(vals[index["uid"]]) + string(vals[index["sessionTokenId"]])
			s.devicesOf[session] = append(s.devicesOf[session], key.String())
		}
	}
	s.rows[table] = out
	return rows.Err()
}

// expectedDeletions is what the README's rules say an apply of the manifest
// deletes from the data of before, when nothing changed since the plan: the
// listed rows, the unverifiedTokens rows of listed sessions, and the devices
// of max-sessions sessions.
func expectedDeletions(path string, before *snapshot) (map[string]map[string]bool, error) {
	r, err := manifest.Open(path)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	gone := map[string]map[string]bool{}
	for _, t := range tables {
		gone[t] = map[string]bool{}
	}
	it := r.Rows(0)
	for row, ok := it.Next(); ok; row, ok = it.Next() {
		gone[row.Table][string(row.Key())] = true
		if row.Table != manifest.TableSessionTokens {
			continue
		}
		if _, ok := before.rows["unverifiedTokens"][string(row.ID)]; ok {
			gone["unverifiedTokens"][string(row.ID)] = true
		}
		if row.Stage == manifest.StageMaxSessions {
			for _, d := range before.devicesOf[string(row.UID)+string(row.ID)] {
				gone["devices"][d] = true
			}
		}
	}
	return gone, it.Err()
}

// checkIdentity compares a snapshot taken after (part of) an apply with the
// one before: every row gone must be one the rules delete, every row left
// must be byte for byte as before, and with complete set, every row the
// rules delete must be gone. It returns the problems found, at most a few
// per table.
func checkIdentity(before, after *snapshot, gone map[string]map[string]bool, complete bool) []string {
	var problems []string
	for _, t := range tables {
		var wrong []string
		for k, sum := range before.rows[t] {
			now, left := after.rows[t][k]
			switch {
			case !left && !gone[t][k]:
				wrong = append(wrong, fmt.Sprintf("row %x deleted, the rules do not delete it", k))
			case left && gone[t][k] && complete:
				wrong = append(wrong, fmt.Sprintf("row %x left, the rules delete it", k))
			case left && now != sum:
				wrong = append(wrong, fmt.Sprintf("row %x changed", k))
			}
		}
		for k := range after.rows[t] {
			if _, was := before.rows[t][k]; !was {
				wrong = append(wrong, fmt.Sprintf("row %x appeared", k))
			}
		}
		sort.Strings(wrong)
		if len(wrong) > 3 {
			wrong = append(wrong[:3], fmt.Sprintf("and %d more", len(wrong)-3))
		}
		for _, w := range wrong {
			problems = append(problems, t+": "+w)
		}
	}
	return problems
}
