package applier

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	"prune-tokens/manifest"
)

// Every statement apply sends is built here, from fixed text and the table
// names of manifest's allow-list; every value is a bound parameter. Each
// statement names at most one batch of keys, so it touches a bounded number of
// index records, and each is a single-table statement (or a plain join in a
// SELECT) so that every MySQL-compatible engine accepts it.

// tableSpec is how one allowed table is addressed by primary key.
type tableSpec struct {
	name    string // SQL table name, from manifest's constants only
	idCol   string // column holding Row.ID
	withUID bool   // the primary key is (uid, idCol)
}

var specs = map[string]tableSpec{
	manifest.TableSessionTokens:        {name: manifest.TableSessionTokens, idCol: "tokenId"},
	manifest.TableAccountResetTokens:   {name: manifest.TableAccountResetTokens, idCol: "tokenId"},
	manifest.TablePasswordForgotTokens: {name: manifest.TablePasswordForgotTokens, idCol: "tokenId"},
	manifest.TablePasswordChangeTokens: {name: manifest.TablePasswordChangeTokens, idCol: "tokenId"},
	manifest.TableSigninCodes:          {name: manifest.TableSigninCodes, idCol: "hash"},
	manifest.TableUnblockCodes:         {name: manifest.TableUnblockCodes, idCol: "unblockCodeHash", withUID: true},
}

func specFor(table string) (tableSpec, error) {
	s, ok := specs[table]
	if !ok {
		return tableSpec{}, fmt.Errorf("table %q is not on the allow-list", table)
	}
	return s, nil
}

// placeholders returns "?, ?, ?" for n values.
func placeholders(n int) string {
	if n <= 0 {
		return ""
	}
	return strings.Repeat("?, ", n-1) + "?"
}

// keyPredicate selects rows by primary key: "tokenId IN (?, ?)" or, for a
// two-column key, "(uid = ? AND unblockCodeHash = ?) OR ...", which the
// optimizer turns into one equality range per row.
func keyPredicate(s tableSpec, prefix string, rows []manifest.Row) (string, []any) {
	args := make([]any, 0, 2*len(rows))
	if !s.withUID {
		for _, r := range rows {
			args = append(args, r.ID)
		}
		return prefix + s.idCol + " IN (" + placeholders(len(rows)) + ")", args
	}
	var b strings.Builder
	for i, r := range rows {
		if i > 0 {
			b.WriteString(" OR ")
		}
		b.WriteString("(" + prefix + "uid = ? AND " + prefix + s.idCol + " = ?)")
		args = append(args, r.UID, r.ID)
	}
	return b.String(), args
}

func lockClause(lock bool) string {
	if lock {
		return " FOR UPDATE"
	}
	return ""
}

// selectRowsSQL reads the current key, uid and createdAt of the listed rows
// (any table but sessionTokens), locking them when lock is set so they cannot
// change between the guard and the delete.
func selectRowsSQL(table string, rows []manifest.Row, lock bool) (string, []any, error) {
	s, err := specFor(table)
	if err != nil {
		return "", nil, err
	}
	where, args := keyPredicate(s, "", rows)
	q := "SELECT " + s.idCol + ", uid, createdAt FROM " + s.name + " WHERE " + where + lockClause(lock)
	return q, args, nil
}

// selectSessionsSQL reads the listed session tokens together with whether
// each has a device (same uid and sessionTokenId: the join names uid, so it
// uses the unique index UQ_devices_sessionTokenId) and an unverifiedTokens
// row. With lock set, FOR UPDATE locks the sessions, their devices and
// unverifiedTokens rows, and the index gap where a device would go, so a
// device cannot appear between this guard and the delete.
func selectSessionsSQL(rows []manifest.Row, lock bool) (string, []any) {
	q := "SELECT s.tokenId, s.uid, s.createdAt, d.id, u.tokenId FROM sessionTokens s" +
		" LEFT JOIN devices d ON d.uid = s.uid AND d.sessionTokenId = s.tokenId" +
		" LEFT JOIN unverifiedTokens u ON u.tokenId = s.tokenId" +
		" WHERE s.tokenId IN (" + placeholders(len(rows)) + ")" + lockClause(lock)
	args := make([]any, len(rows))
	for i, r := range rows {
		args[i] = r.ID
	}
	return q, args
}

// deleteRowsSQL deletes the listed rows of one table by primary key.
func deleteRowsSQL(table string, rows []manifest.Row) (string, []any, error) {
	s, err := specFor(table)
	if err != nil {
		return "", nil, err
	}
	where, args := keyPredicate(s, "", rows)
	return "DELETE FROM " + s.name + " WHERE " + where, args, nil
}

// deleteUnverifiedSQL deletes the unverifiedTokens rows of sessions.
func deleteUnverifiedSQL(rows []manifest.Row) (string, []any) {
	args := make([]any, len(rows))
	for i, r := range rows {
		args[i] = r.ID
	}
	return "DELETE FROM unverifiedTokens WHERE tokenId IN (" + placeholders(len(rows)) + ")", args
}

// deleteDevicesSQL deletes the devices of sessions.
func deleteDevicesSQL(rows []manifest.Row) (string, []any) {
	pairs, args := devicePairs(rows)
	return "DELETE FROM devices WHERE " + pairs, args
}

// devicePairs selects the devices of sessions, always naming uid so the
// unique index (uid, sessionTokenId) is used rather than a scan.
func devicePairs(rows []manifest.Row) (string, []any) {
	var b strings.Builder
	args := make([]any, 0, 2*len(rows))
	for i, r := range rows {
		if i > 0 {
			b.WriteString(" OR ")
		}
		b.WriteString("(uid = ? AND sessionTokenId = ?)")
		args = append(args, r.UID, r.ID)
	}
	return b.String(), args
}

// The statements of a batch on a server that runs them (MariaDB, MySQL): see
// deleteBatchFast. A guard in a DELETE is never a correlated subquery (NOT
// EXISTS devices, EXISTS the session): the subquery is set up again for
// every row. A joined read of the batch, then one multi-table DELETE of the
// sessions with their dependants, costs little more than the plain delete
// loop (docs/benchmarks.md).

// selectSessionsForDeleteSQL reads and locks the listed sessions, each with
// whether it has a device (same uid and sessionTokenId: the join names uid,
// so it probes UQ_devices_sessionTokenId), one row per device. FOR UPDATE
// locks the sessions, their devices, and the index gap where a device
// would go, so nothing the classification depends on changes before the
// DELETE in the same transaction. Unverified rows need no read: the DELETE
// takes each eligible session's with it, and their count is what it
// deleted besides the sessions and devices.
func selectSessionsForDeleteSQL(rows []manifest.Row) (string, []any) {
	q := "SELECT s.tokenId, s.uid, s.createdAt, d.id FROM sessionTokens s FORCE INDEX (PRIMARY)" +
		" LEFT JOIN devices d ON d.uid = s.uid AND d.sessionTokenId = s.tokenId" +
		" WHERE s.tokenId IN (" + placeholders(len(rows)) + ") FOR UPDATE"
	args := make([]any, len(rows))
	for i, r := range rows {
		args[i] = r.ID
	}
	return q, args
}

// deleteSessionsSQL deletes the eligible sessions (already read, locked and
// classified) together with their unverifiedTokens row and, in
// max-sessions, their devices (same uid, sessionTokenId = the token), in
// one statement: one parse of the key list instead of two or three.
func deleteSessionsSQL(stage string, rows []manifest.Row) (string, []any) {
	targets, join := "s, u", ""
	if stage == manifest.StageMaxSessions {
		targets, join = "s, u, d", " LEFT JOIN devices d ON d.uid = s.uid AND d.sessionTokenId = s.tokenId"
	}
	q := "DELETE " + targets + " FROM sessionTokens s FORCE INDEX (PRIMARY) LEFT JOIN unverifiedTokens u ON u.tokenId = s.tokenId" + join +
		" WHERE s.tokenId IN (" + placeholders(len(rows)) + ")"
	args := make([]any, len(rows))
	for i, r := range rows {
		args[i] = r.ID
	}
	return q, args
}

// deleteExactSQL deletes the listed rows of a table without dependants that
// are still exactly as planned: key, uid and createdAt. The list of
// (key, uid, createdAt) drives the statement on the primary key; FORCE
// INDEX keeps the range optimizer from building ranges on every index the
// uid and createdAt components could use, which costs MariaDB far more than
// the delete itself (docs/benchmarks.md).
func deleteExactSQL(table string, rows []manifest.Row) (string, []any, error) {
	s, err := specFor(table)
	if err != nil {
		return "", nil, err
	}
	cols := "(t." + s.idCol + ", t.uid, t.createdAt)"
	if s.withUID {
		cols = "(t.uid, t." + s.idCol + ", t.createdAt)"
	}
	args := make([]any, 0, 3*len(rows))
	for _, r := range rows {
		if s.withUID {
			args = append(args, r.UID, r.ID, r.CreatedAt)
		} else {
			args = append(args, r.ID, r.UID, r.CreatedAt)
		}
	}
	q := "DELETE t FROM " + s.name + " t FORCE INDEX (PRIMARY) WHERE " + cols + " IN (" +
		strings.TrimSuffix(strings.Repeat("(?, ?, ?), ", len(rows)), ", ") + ")"
	return q, args, nil
}

// presentKeysSQL reads the keys of the listed rows still in the table (id;
// uid and id for unblockCodes): after deleteExactSQL in the same
// transaction, the rows a guard kept.
func presentKeysSQL(table string, rows []manifest.Row) (string, []any, error) {
	s, err := specFor(table)
	if err != nil {
		return "", nil, err
	}
	cols := s.idCol
	if s.withUID {
		cols = "uid, " + s.idCol
	}
	where, args := keyPredicate(s, "", rows)
	return "SELECT " + cols + " FROM " + s.name + " WHERE " + where, args, nil
}

// guardedSessionsSQL is a batch of token-age sessions as three statements,
// which deleteGuardedSessions sends in one round trip after START
// TRANSACTION, the guard living in the DELETE itself:
//
//  1. count the unverifiedTokens rows in the range of keys the batch spans
//     (unverifiedCountSQL), a consistent read that locks nothing;
//  2. DELETE the listed sessions still exactly as planned and without a
//     device, with their unverifiedTokens rows. The key list drives it on
//     the primary key (forced: a scan, which a small table's statistics
//     can make look cheaper, would lock every row); the plan match is one
//     CONCAT of key, uid and createdAt compared with a list (planMatch),
//     which no index can serve, so it never reaches the range optimizer;
//     the device check is an anti-join naming uid, so it probes
//     UQ_devices_sessionTokenId and, in a DELETE, locks the gap where a
//     device would go;
//  3. read the DELETE's row count (sessions and unverifiedTokens rows
//     together) and how many of those were unverifiedTokens rows: the
//     count of statement 1 less the same count again. Both counts read the
//     transaction's one snapshot, the second with the transaction's own
//     deletes, so the difference is exactly what the DELETE removed from
//     unverifiedTokens, whatever the service changed meanwhile.
//
// Only the DELETE locks: the listed sessions it reads, their
// unverifiedTokens rows and the gaps its guard needs; no row of a session
// the manifest does not list.
func guardedSessionsSQL(rows []manifest.Row) []statement {
	keys := make([]any, 0, 2*len(rows))
	for _, r := range rows {
		keys = append(keys, r.ID)
	}
	for _, r := range rows {
		keys = append(keys, planMatch(r))
	}
	in := placeholders(len(rows))
	count, ids := unverifiedCountSQL(rows)
	return []statement{
		{strings.Replace(count, "SELECT COUNT(*)", "SELECT COUNT(*) INTO @prune_tokens_unverified", 1), ids},
		{"DELETE s, u FROM sessionTokens s FORCE INDEX (PRIMARY) LEFT JOIN unverifiedTokens u ON u.tokenId = s.tokenId" +
			" LEFT JOIN devices d ON d.uid = s.uid AND d.sessionTokenId = s.tokenId" +
			" WHERE s.tokenId IN (" + in + ") AND d.id IS NULL AND CONCAT(s.tokenId, s.uid, s.createdAt) IN (" + in + ")", keys},
		{strings.Replace(count, "SELECT COUNT(*)", "SELECT ROW_COUNT(), @prune_tokens_unverified - COUNT(*)", 1), ids},
	}
}

// unverifiedCountSQL counts the unverifiedTokens rows between the batch's
// lowest and highest key (guardedSessionsSQL): every row the DELETE can
// remove is in that range. It is a consistent read, locking nothing, so
// the range may hold other sessions' rows: they count the same before and
// after. A range scan reads sequentially, and a manifest's batches follow
// its key order, so the ranges of a run's batches do not overlap: the
// counts read unverifiedTokens about twice over the whole run, however
// dense or sparse the manifest (a format-1 manifest, in createdAt order,
// spans the whole table a batch).
func unverifiedCountSQL(rows []manifest.Row) (string, []any) {
	lo, hi := keyRange(rows)
	return "SELECT COUNT(*) FROM unverifiedTokens FORCE INDEX (PRIMARY) WHERE tokenId BETWEEN ? AND ?", []any{lo, hi}
}

// keyRange is the lowest and the highest ID of rows.
func keyRange(rows []manifest.Row) (lo, hi []byte) {
	lo, hi = rows[0].ID, rows[0].ID
	for _, r := range rows[1:] {
		if bytes.Compare(r.ID, lo) < 0 {
			lo = r.ID
		}
		if bytes.Compare(r.ID, hi) > 0 {
			hi = r.ID
		}
	}
	return lo, hi
}

// planMatch is what CONCAT(tokenId, uid, createdAt) gives for the row as
// planned: the key and uid have fixed widths (manifest verifies them), so
// equal values mean equal key, uid and createdAt.
func planMatch(r manifest.Row) []byte {
	out := make([]byte, 0, len(r.ID)+len(r.UID)+20)
	out = append(out, r.ID...)
	out = append(out, r.UID...)
	return strconv.AppendInt(out, r.CreatedAt, 10)
}

// joinStatements makes one multi-statement text of stmts, with their
// arguments in order.
func joinStatements(stmts []statement) (string, []any) {
	var qs []string
	var args []any
	for _, s := range stmts {
		qs = append(qs, s.query)
		args = append(args, s.args...)
	}
	return strings.Join(qs, "; "), args
}

// inlineHex writes args into query's placeholders as literals: byte strings
// as hexadecimal literals (X'0a1b...', nothing but hex digits, so no value
// can end the literal early), integers in decimal. MariaDB parses long
// lists of hexadecimal literals faster than the escaped _binary'...'
// strings the driver writes, and a batch's DELETE carries two such lists
// (docs/benchmarks.md). query must have no '?' but its placeholders (the
// builders' fixed text has none).
func inlineHex(query string, args []any) (string, error) {
	// The text is sized exactly before it is written, and the values are
	// encoded in place: a batch's text is tens of kilobytes, built on the
	// batch's critical path, where growing a buffer and making a string per
	// value would be most of its cost.
	size := len(query) - len(args)
	for i, a := range args {
		switch v := a.(type) {
		case []byte:
			size += 3 + 2*len(v)
		case int64:
			size += 20
		default:
			return "", fmt.Errorf("value %d is a %T, not bytes or an integer", i+1, v)
		}
	}
	b := make([]byte, 0, max(size, 0))
	i := 0
	for {
		k := strings.IndexByte(query, '?')
		if k < 0 {
			break
		}
		if i >= len(args) {
			return "", fmt.Errorf("statement has more placeholders than the %d values", len(args))
		}
		b = append(b, query[:k]...)
		query = query[k+1:]
		switch v := args[i].(type) {
		case []byte:
			b = append(b, "X'"...)
			b = hex.AppendEncode(b, v)
			b = append(b, '\'')
		case int64:
			b = strconv.AppendInt(b, v, 10)
		}
		i++
	}
	if i != len(args) {
		return "", fmt.Errorf("statement has %d placeholders for %d values", i, len(args))
	}
	b = append(b, query...)
	return string(b), nil
}

// rankCutSQL reads, of an account's sessions now, the keep-th newest by
// (createdAt, tokenId), as FxA's limitSessions ranked them when it deleted:
// a listed max-sessions session older than it still has keep newer ones
// and may go; one not older would take the account below its limit. With
// lock, LOCK IN SHARE MODE holds the account's sessions (the uid index
// range it reads) until the batch ends, so no logout can lower the count
// between this read and the DELETE; sign-ins wait for the batch too.
func rankCutSQL(uid []byte, keep int64, lock bool) (string, []any) {
	q := "SELECT createdAt, tokenId FROM sessionTokens WHERE uid = ? ORDER BY createdAt DESC, tokenId DESC LIMIT 1 OFFSET " +
		strconv.FormatInt(keep-1, 10)
	if lock {
		q += " LOCK IN SHARE MODE"
	}
	return q, []any{uid}
}
