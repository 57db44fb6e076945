package applier

import (
	"fmt"
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

// The guarded statements carry apply's guard in their WHERE, so the common
// batch costs what the plain delete loop costs: BEGIN, the dependants'
// DELETE, the row DELETE, COMMIT. Each is driven by the explicit key list
// (a range of at most one batch of keys on the primary or unique index:
// MariaDB before 11.1 runs a single-table DELETE ... IN (SELECT ...) as a
// full scan, so a subquery never drives one), and each names the planned
// row exactly: its key, uid and createdAt.

// planMatch says a row is exactly the planned one: "(key, uid, createdAt)
// IN ((?, ?, ?), ...) IS TRUE". The IS TRUE hides the row list from the
// range optimizer, which otherwise spends about a second per statement
// (MariaDB 10.11, 1,000 rows) building ranges on every index it could
// touch from a condition that can only filter rows the key list already
// found; evaluated per row, the list is a sorted-array lookup.
func planMatch(s tableSpec, prefix string, rows []manifest.Row) (string, []any) {
	cols := "(" + prefix + s.idCol + ", " + prefix + "uid, " + prefix + "createdAt)"
	if s.withUID {
		cols = "(" + prefix + "uid, " + prefix + s.idCol + ", " + prefix + "createdAt)"
	}
	args := make([]any, 0, 3*len(rows))
	for _, r := range rows {
		if s.withUID {
			args = append(args, r.UID, r.ID, r.CreatedAt)
		} else {
			args = append(args, r.ID, r.UID, r.CreatedAt)
		}
	}
	return "(" + cols + " IN (" + strings.TrimSuffix(strings.Repeat("(?, ?, ?), ", len(rows)), ", ") + ")) IS TRUE", args
}

// noDevice is the token-age rule, naming uid so that the lookup uses
// UQ_devices_sessionTokenId (uid, sessionTokenId).
func noDevice(session string) string {
	return "NOT EXISTS (SELECT 1 FROM devices d WHERE d.uid = " + session + ".uid AND d.sessionTokenId = " + session + ".tokenId)"
}

// deleteGuardedSQL deletes the listed rows of sec's table that are still
// exactly as planned (and, for token-age sessions, still have no device).
func deleteGuardedSQL(sec manifest.Section, rows []manifest.Row) (string, []any, error) {
	s, err := specFor(sec.Table)
	if err != nil {
		return "", nil, err
	}
	where, args := keyPredicate(s, "", rows)
	if s.withUID {
		where = "(" + where + ")"
	}
	match, margs := planMatch(s, "", rows)
	q := "DELETE FROM " + s.name + " WHERE " + where + " AND " + match
	if sec.Stage == manifest.StageTokenAge && sec.Table == manifest.TableSessionTokens {
		q += " AND " + noDevice(manifest.TableSessionTokens)
	}
	return q, append(args, margs...), nil
}

// sessionGuard is the condition on a session s under which its deletion
// goes ahead: the planned row, and in token-age no device.
func sessionGuard(sec manifest.Section, rows []manifest.Row) (string, []any) {
	match, args := planMatch(specs[manifest.TableSessionTokens], "s.", rows)
	if sec.Stage == manifest.StageTokenAge {
		match += " AND " + noDevice("s")
	}
	return match, args
}

// deleteUnverifiedGuardedSQL deletes the unverifiedTokens rows of exactly
// the sessions deleteGuardedSQL will delete, before it runs. Its subquery
// reads the sessions and their devices' index gap with shared locks (InnoDB
// locks what a DML statement's subquery reads at REPEATABLE READ), so they
// cannot change before the sessions' own DELETE in the same transaction.
func deleteUnverifiedGuardedSQL(sec manifest.Section, rows []manifest.Row) (string, []any) {
	ids := make([]any, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
	}
	guard, gargs := sessionGuard(sec, rows)
	q := "DELETE FROM unverifiedTokens WHERE tokenId IN (" + placeholders(len(rows)) + ")" +
		" AND EXISTS (SELECT 1 FROM sessionTokens s WHERE s.tokenId = unverifiedTokens.tokenId AND " + guard + ")"
	return q, append(ids, gargs...)
}

// deleteDevicesGuardedSQL deletes, in max-sessions, the devices of exactly
// the sessions deleteGuardedSQL will delete: same uid, sessionTokenId =
// the token, the session still as planned.
func deleteDevicesGuardedSQL(sec manifest.Section, rows []manifest.Row) (string, []any) {
	pairs, args := devicePairs(rows)
	guard, gargs := sessionGuard(sec, rows)
	q := "DELETE FROM devices WHERE (" + pairs + ")" +
		" AND EXISTS (SELECT 1 FROM sessionTokens s WHERE s.tokenId = devices.sessionTokenId AND s.uid = devices.uid AND " + guard + ")"
	return q, append(args, gargs...)
}

// presentKeysSQL reads the keys of the listed rows still in the table (id;
// uid and id for unblockCodes): after a guarded DELETE in the same
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
