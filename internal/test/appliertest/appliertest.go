// Package appliertest builds apply test cases: a deterministic FxA data set in
// a test database, the manifest a plan of it would list, and an exact check of
// which rows must be left in each of the nine tables.
package appliertest

import (
	"bytes"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"prune-tokens/internal/test/dbtest"
	"prune-tokens/manifest"
)

// Now is the planning instant of every fixture; rows older than Cutoff are
// listed.
const (
	Now    int64 = 1_700_000_000_000
	Cutoff       = Now - 30*24*3600*1000
)

// Fixture is a seeded database and the manifest rows planned from it.
type Fixture struct {
	DB   *dbtest.DB
	Rows []manifest.Row // in manifest order
	// remain[table][key] says whether the row must still be there after
	// apply; every row the fixture inserted is listed.
	remain map[string]map[string]bool
	// deps lists, per listed row (table + hex key), the rows of other
	// tables deleted with it (a session's unverifiedTokens and devices).
	deps map[string][]dep
	rnd  *rand.Rand
	pend map[string][][]any
}

type dep struct{ table, key string }

// Sizes says how many rows of each kind to seed.
type Sizes struct {
	MaxSessionAccounts int // accounts trimmed by max-sessions
	SessionsPerAccount int // sessions each; the newest 5 are kept
	TokenAgeSessions   int // old device-less sessions (listed)
	OtherTokens        int // per token table and code table: old (listed) rows; as many young rows are added
}

// Small is quick to seed and covers every section.
var Small = Sizes{MaxSessionAccounts: 2, SessionsPerAccount: 12, TokenAgeSessions: 20, OtherTokens: 6}

// New seeds db deterministically from seed with the given sizes and returns
// the fixture. Every listed row has a reason to be listed and every unlisted
// row a reason to stay (young, has a device, keyFetchTokens, ...).
func New(t testing.TB, db *dbtest.DB, seed uint64, sz Sizes) *Fixture {
	t.Helper()
	f := &Fixture{DB: db, remain: map[string]map[string]bool{}, deps: map[string][]dep{}, rnd: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		pend: map[string][][]any{}}
	old := func() int64 { return Cutoff - 1 - f.rnd.Int64N(300*24*3600*1000) }
	young := func() int64 { return Cutoff + f.rnd.Int64N(29*24*3600*1000) }

	// max-sessions: per account, all sessions but the newest 5 are listed,
	// with their devices (a third) and unverifiedTokens rows (a fifth).
	var maxRows []manifest.Row
	for range sz.MaxSessionAccounts {
		uid := f.bytes(16)
		var group []manifest.Row
		for i := range sz.SessionsPerAccount {
			id := f.bytes(32)
			created := Now - int64(sz.SessionsPerAccount-i)*1000 - f.rnd.Int64N(500)
			listed := i < sz.SessionsPerAccount-5
			f.session(id, uid, created, !listed)
			if f.rnd.IntN(3) == 0 {
				d := f.device(uid, id, !listed)
				if listed {
					f.addDep(manifest.TableSessionTokens, id, "devices", d)
				}
			}
			if f.rnd.IntN(5) == 0 {
				f.unverified(id, uid, !listed)
				if listed {
					f.addDep(manifest.TableSessionTokens, id, "unverifiedTokens", id)
				}
			}
			if listed {
				group = append(group, manifest.Row{Stage: manifest.StageMaxSessions, Table: manifest.TableSessionTokens, ID: id, UID: uid, CreatedAt: created})
			}
		}
		sortAge(group)
		maxRows = append(maxRows, group...)
	}
	f.Rows = append(f.Rows, maxRows...)

	// token-age: the other token tables, then sessions without devices.
	// Half of each table's rows are old and listed, half young and kept.
	halfListed := func(stage, table string, insert func(table string, id, uid []byte, created int64, remain bool)) {
		var rows []manifest.Row
		for i := range 2 * sz.OtherTokens {
			id, uid := f.bytes(32), f.bytes(16)
			listed := i%2 == 0
			created := young()
			if listed {
				created = old()
				rows = append(rows, manifest.Row{Stage: stage, Table: table, ID: id, UID: uid, CreatedAt: created})
			}
			insert(table, id, uid, created, !listed)
		}
		sortKey(rows)
		f.Rows = append(f.Rows, rows...)
	}
	for _, table := range []string{manifest.TableAccountResetTokens, manifest.TablePasswordForgotTokens, manifest.TablePasswordChangeTokens} {
		halfListed(manifest.StageTokenAge, table, f.token)
	}
	var sessRows []manifest.Row
	for range sz.TokenAgeSessions {
		id, uid := f.bytes(32), f.bytes(16)
		created := old()
		f.session(id, uid, created, false)
		if f.rnd.IntN(5) == 0 {
			f.unverified(id, uid, false)
			f.addDep(manifest.TableSessionTokens, id, "unverifiedTokens", id)
		}
		// A device under another account with this sessionTokenId does
		// not protect the session.
		if f.rnd.IntN(6) == 0 {
			f.device(f.bytes(16), id, true)
		}
		sessRows = append(sessRows, manifest.Row{Stage: manifest.StageTokenAge, Table: manifest.TableSessionTokens, ID: id, UID: uid, CreatedAt: created})
	}
	// Old sessions with a device and young sessions are not listed.
	for i := range sz.TokenAgeSessions / 2 {
		id, uid := f.bytes(32), f.bytes(16)
		if i%2 == 0 {
			f.session(id, uid, old(), true)
			f.device(uid, id, true)
		} else {
			f.session(id, uid, young(), true)
		}
		f.unverified(id, uid, true)
	}
	sortKey(sessRows)
	f.Rows = append(f.Rows, sessRows...)

	// code-age.
	for _, table := range []string{manifest.TableUnblockCodes, manifest.TableSigninCodes} {
		halfListed(manifest.StageCodeAge, table, f.code)
	}
	// keyFetchTokens are never listed, however old.
	for range sz.OtherTokens {
		f.add("keyFetchTokens", hexKey(f.mustInsertKey("keyFetchTokens")), true)
	}
	f.Flush(t)
	return f
}

func (f *Fixture) bytes(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(f.rnd.Uint32())
	}
	return b
}

func hexKey(b []byte) string { return hex.EncodeToString(b) }

func (f *Fixture) add(table, key string, remain bool) {
	if f.remain[table] == nil {
		f.remain[table] = map[string]bool{}
	}
	f.remain[table][key] = remain
}

func (f *Fixture) queue(table string, vals ...any) { f.pend[table] = append(f.pend[table], vals) }

var insertCols = map[string]string{
	"sessionTokens":        "tokenId, tokenData, uid, createdAt",
	"unverifiedTokens":     "tokenId, tokenVerificationId, uid, tokenVerificationCodeHash",
	"devices":              "uid, id, sessionTokenId, createdAt",
	"accountResetTokens":   "tokenId, tokenData, uid, createdAt",
	"passwordForgotTokens": "tokenId, tokenData, uid, passCode, createdAt, tries",
	"passwordChangeTokens": "tokenId, tokenData, uid, createdAt",
	"keyFetchTokens":       "tokenId, authKey, uid, keyBundle, createdAt",
	"unblockCodes":         "uid, unblockCodeHash, createdAt",
	"signinCodes":          "hash, uid, createdAt",
}

// Flush inserts the queued rows, a few hundred per statement.
func (f *Fixture) Flush(t testing.TB) {
	t.Helper()
	for _, table := range dbtest.Tables {
		rows := f.pend[table]
		for len(rows) > 0 {
			n := min(len(rows), 500)
			chunk := rows[:n]
			rows = rows[n:]
			ph := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(chunk[0])), ", ") + ")"
			var args []any
			vals := make([]string, n)
			for i, r := range chunk {
				vals[i] = ph
				args = append(args, r...)
			}
			q := "INSERT INTO " + table + " (" + insertCols[table] + ") VALUES " + strings.Join(vals, ", ")
			if _, err := f.DB.SQL.Exec(q, args...); err != nil {
				t.Fatalf("seed %s: %v", table, err)
			}
		}
		delete(f.pend, table)
	}
}

func (f *Fixture) session(id, uid []byte, created int64, remain bool) {
	f.queue("sessionTokens", id, f.bytes(32), uid, created)
	f.add("sessionTokens", hexKey(id), remain)
}

func (f *Fixture) device(uid, sessionID []byte, remain bool) []byte {
	did := f.bytes(16)
	f.queue("devices", uid, did, sessionID, Now)
	key := append(slices.Clone(uid), did...)
	f.add("devices", hexKey(key), remain)
	return key
}

func (f *Fixture) addDep(table string, key []byte, depTable string, depKey []byte) {
	k := table + "/" + hexKey(key)
	f.deps[k] = append(f.deps[k], dep{depTable, hexKey(depKey)})
}

// Restrict keeps only the listed rows of the given stages, as a plan with
// the other stages turned off would list: the others (and the rows that
// would have gone with them) must remain.
func (f *Fixture) Restrict(stages ...string) {
	var kept []manifest.Row
	for _, r := range f.Rows {
		if slices.Contains(stages, r.Stage) {
			kept = append(kept, r)
			continue
		}
		f.add(r.Table, hexKey(r.Key()), true)
		for _, d := range f.deps[r.Table+"/"+hexKey(r.Key())] {
			f.add(d.table, d.key, true)
		}
	}
	f.Rows = kept
}

func (f *Fixture) unverified(id, uid []byte, remain bool) {
	f.queue("unverifiedTokens", id, f.bytes(16), uid, f.bytes(32))
	f.add("unverifiedTokens", hexKey(id), remain)
}

func (f *Fixture) token(table string, id, uid []byte, created int64, remain bool) {
	switch table {
	case manifest.TablePasswordForgotTokens:
		f.queue(table, id, f.bytes(32), uid, f.bytes(16), created, 0)
	default:
		f.queue(table, id, f.bytes(32), uid, created)
	}
	f.add(table, hexKey(id), remain)
}

func (f *Fixture) code(table string, id, uid []byte, created int64, remain bool) {
	if table == manifest.TableUnblockCodes {
		f.queue(table, uid, id, created)
		f.add(table, hexKey(append(slices.Clone(uid), id...)), remain)
		return
	}
	f.queue(table, id, uid, created)
	f.add(table, hexKey(id), remain)
}

func (f *Fixture) mustInsertKey(table string) []byte {
	id := f.bytes(32)
	f.queue(table, id, f.bytes(32), f.bytes(16), f.bytes(96), Cutoff-1_000_000)
	return id
}

// sortKey puts the rows of a token-age or code-age section in manifest
// order: by primary key.
func sortKey(rows []manifest.Row) { slices.SortFunc(rows, manifest.CompareKey) }

// sortAge puts the rows of one max-sessions account in manifest order:
// (createdAt, key).
func sortAge(rows []manifest.Row) {
	sort.Slice(rows, func(i, j int) bool {
		if rows[i].CreatedAt != rows[j].CreatedAt {
			return rows[i].CreatedAt < rows[j].CreatedAt
		}
		return bytes.Compare(rows[i].Key(), rows[j].Key()) < 0
	})
}

// Expect overrides what must happen to a row (key as the table's primary
// key bytes: uid+id for devices and unblockCodes).
func (f *Fixture) Expect(table string, key []byte, remain bool) { f.add(table, hexKey(key), remain) }

// Listed returns the listed rows of one section.
func (f *Fixture) Listed(stage, table string) []manifest.Row {
	var out []manifest.Row
	for _, r := range f.Rows {
		if r.Stage == stage && r.Table == table {
			out = append(out, r)
		}
	}
	return out
}

// DeleteRowSQL is the statement that deletes one listed row by its key, as
// another client of the database would.
func DeleteRowSQL(r manifest.Row) (string, []any) {
	q := map[string]string{
		manifest.TableSessionTokens:        "DELETE FROM sessionTokens WHERE tokenId = ?",
		manifest.TableAccountResetTokens:   "DELETE FROM accountResetTokens WHERE tokenId = ?",
		manifest.TablePasswordForgotTokens: "DELETE FROM passwordForgotTokens WHERE tokenId = ?",
		manifest.TablePasswordChangeTokens: "DELETE FROM passwordChangeTokens WHERE tokenId = ?",
		manifest.TableSigninCodes:          "DELETE FROM signinCodes WHERE hash = ?",
		manifest.TableUnblockCodes:         "DELETE FROM unblockCodes WHERE uid = ? AND unblockCodeHash = ?",
	}[r.Table]
	if r.Table == manifest.TableUnblockCodes {
		return q, []any{r.UID, r.ID}
	}
	return q, []any{r.ID}
}

// DeleteListed deletes a listed row as someone else would, after the plan.
// Rows that would have gone with it (a session's devices and unverified
// row) stay: apply touches nothing of a row that is already gone.
func (f *Fixture) DeleteListed(t testing.TB, r manifest.Row) {
	t.Helper()
	q, args := DeleteRowSQL(r)
	if _, err := f.DB.SQL.Exec(q, args...); err != nil {
		t.Fatalf("delete listed %s row: %v", r.Table, err)
	}
	f.add(r.Table, hexKey(r.Key()), false)
	for _, d := range f.deps[r.Table+"/"+hexKey(r.Key())] {
		f.add(d.table, d.key, true)
	}
}

// Deps is how many rows of other tables go with a listed row.
func (f *Fixture) Deps(r manifest.Row) int { return len(f.deps[r.Table+"/"+hexKey(r.Key())]) }

// AddDevice gives a session a device now (after the plan).
func (f *Fixture) AddDevice(t testing.TB, uid, sessionID []byte) {
	t.Helper()
	f.device(uid, sessionID, true)
	f.Flush(t)
}

// AddSession inserts an unlisted session (for example one that qualifies
// now but was not planned) that must survive.
func (f *Fixture) AddSession(t testing.TB, created int64) []byte {
	t.Helper()
	id := f.bytes(32)
	f.session(id, f.bytes(16), created, true)
	f.Flush(t)
	return id
}

// AddToken inserts an unlisted token or code that must survive.
func (f *Fixture) AddToken(t testing.TB, table string, created int64) {
	t.Helper()
	if table == manifest.TableUnblockCodes || table == manifest.TableSigninCodes {
		f.code(table, f.bytes(32), f.bytes(16), created, true)
	} else {
		f.token(table, f.bytes(32), f.bytes(16), created, true)
	}
	f.Flush(t)
}

// keyQuery reads every primary key of a table; two-column keys are joined in
// Go (go-mysql-server's CONCAT refuses binary values).
var keyQuery = map[string]string{
	"sessionTokens":        "SELECT tokenId FROM sessionTokens",
	"unverifiedTokens":     "SELECT tokenId FROM unverifiedTokens",
	"devices":              "SELECT uid, id FROM devices",
	"accountResetTokens":   "SELECT tokenId FROM accountResetTokens",
	"passwordForgotTokens": "SELECT tokenId FROM passwordForgotTokens",
	"passwordChangeTokens": "SELECT tokenId FROM passwordChangeTokens",
	"keyFetchTokens":       "SELECT tokenId FROM keyFetchTokens",
	"unblockCodes":         "SELECT uid, unblockCodeHash FROM unblockCodes",
	"signinCodes":          "SELECT hash FROM signinCodes",
}

// Keys returns the primary keys (hex) present in a table.
func Keys(t testing.TB, db *sql.DB, table string) map[string]bool {
	t.Helper()
	rows, err := db.Query(keyQuery[table])
	if err != nil {
		t.Fatalf("read keys of %s: %v", table, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for rows.Next() {
		var k, k2 []byte
		dst := []any{&k, &k2}[:len(cols)]
		if err := rows.Scan(dst...); err != nil {
			t.Fatal(err)
		}
		out[hexKey(append(k, k2...))] = true
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// Check fails the test unless each of the nine tables holds exactly the rows
// that must remain.
func (f *Fixture) Check(t testing.TB) {
	t.Helper()
	for _, table := range dbtest.Tables {
		got := Keys(t, f.DB.SQL, table)
		var missing, extra []string
		for k, remain := range f.remain[table] {
			if remain && !got[k] {
				missing = append(missing, k)
			}
			if !remain && got[k] {
				extra = append(extra, k)
			}
		}
		for k := range got {
			if _, known := f.remain[table][k]; !known {
				extra = append(extra, k+" (unknown)")
			}
		}
		if len(missing) > 0 || len(extra) > 0 {
			t.Errorf("%s: %d rows deleted that should remain %v; %d rows left that should be gone %v",
				table, len(missing), head(missing), len(extra), head(extra))
		}
	}
}

// Remaining is how many rows of a table must remain.
func (f *Fixture) Remaining(table string) int {
	n := 0
	for _, r := range f.remain[table] {
		if r {
			n++
		}
	}
	return n
}

func head(s []string) []string {
	sort.Strings(s)
	if len(s) > 3 {
		return append(s[:3:3], "...")
	}
	return s
}

// WriteManifest writes rows as a manifest named name in dir, planned at
// plannedAt from database fxa_test on 127.0.0.1:3306, and returns its path
// and file SHA-256.
func WriteManifest(t testing.TB, dir, name string, rows []manifest.Row, plannedAt time.Time) (string, string) {
	t.Helper()
	return WriteManifestFrom(t, dir, name, rows, plannedAt, manifest.Source{Host: "127.0.0.1", Port: 3306, Database: "fxa_test"})
}

// WriteManifestFrom is WriteManifest with the plan's source database.
func WriteManifestFrom(t testing.TB, dir, name string, rows []manifest.Row, plannedAt time.Time, src manifest.Source) (string, string) {
	t.Helper()
	return WriteManifestEdited(t, dir, name, rows, plannedAt, src, nil)
}

// WriteManifestEdited is WriteManifestFrom with the metadata edited by edit
// before it is written: a forger's file, its digest and counts computed
// honestly by the writer, its recorded rules whatever edit made them.
func WriteManifestEdited(t testing.TB, dir, name string, rows []manifest.Row, plannedAt time.Time, src manifest.Source, edit func(*manifest.Meta)) (string, string) {
	t.Helper()
	path := filepath.Join(dir, name)
	w, err := manifest.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if err := w.Write(r); err != nil {
			w.Abort()
			t.Fatalf("manifest row: %v", err)
		}
	}
	meta := manifest.Meta{ToolVersion: "test", PlannedAt: plannedAt, Now: Now, TokenCutoff: Cutoff, CodeCutoff: Cutoff,
		Flags: map[string]string{"maxTokenAge": "30 days", "maxSessions": "5"}, Source: src, TopAccounts: TopAccounts(rows), Snapshot: manifest.SnapshotConsistent}
	if edit != nil {
		edit(&meta)
	}
	if _, err := w.Commit(meta); err != nil {
		t.Fatal(err)
	}
	sum, err := manifest.FileSHA256(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, sum
}

// TopAccounts is the max_sessions_accounts metadata of rows' max-sessions
// groups, as plan records it: each group's account in file order, with its
// rows to delete and, the fixture keeping the newest 5, that many more
// sessions, raised where needed so the list stays most sessions first.
func TopAccounts(rows []manifest.Row) []manifest.Account {
	var top []manifest.Account
	for i, r := range rows {
		if r.Stage != manifest.StageMaxSessions {
			continue
		}
		if i == 0 || rows[i-1].Stage != manifest.StageMaxSessions || !bytes.Equal(rows[i-1].UID, r.UID) {
			top = append(top, manifest.Account{UID: hex.EncodeToString(r.UID)})
		}
		top[len(top)-1].ToDelete++
	}
	var most int64
	for i := len(top) - 1; i >= 0; i-- {
		most = max(most, top[i].ToDelete)
		top[i].Sessions = most + 5
	}
	return top
}

// Manifest writes the fixture's rows as a manifest planned just now.
func (f *Fixture) Manifest(t testing.TB, dir string) (string, string) {
	t.Helper()
	return WriteManifest(t, dir, "plan.parquet", f.Rows, time.Now())
}

// String summarises the fixture for test logs.
func (f *Fixture) String() string {
	var b strings.Builder
	for _, table := range dbtest.Tables {
		fmt.Fprintf(&b, "%s=%d/%d ", table, f.Remaining(table), len(f.remain[table]))
	}
	return b.String()
}

// Approval is the SHA-256 that approves the manifest at path, as a person
// would give it to apply --approve; a digest no file has when there is no
// such file (a test of a missing manifest).
func Approval(path string) string {
	if sum, err := manifest.FileSHA256(path); err == nil {
		return sum
	}
	return strings.Repeat("0", 64)
}

// CopyFile copies a file (such as a manifest from testdata) into dir, so a
// test can write a checkpoint beside it, and returns the copy's path.
func CopyFile(t testing.TB, src, dir string) string {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, filepath.Base(src))
	if err := os.WriteFile(dst, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return dst
}

// CraftCheckpointSections rewrites every record of the checkpoint at path to
// claim n sections and seals it with a valid checksum again, as a bug or a
// hand edit could. It follows the layout of applier/checkpoint.go: two
// 512-byte slots, each starting with the magic "PTCKPT01", the section count
// as 8 bytes big-endian at byte 96, and a SHA-256 of the first 480 bytes in
// the last 32.
func CraftCheckpointSections(t testing.TB, path string, n uint64) {
	t.Helper()
	const slot, countAt, sumAt = 512, 96, 512 - sha256.Size
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 2*slot {
		t.Fatalf("checkpoint %s is %d bytes, want %d", path, len(b), 2*slot)
	}
	crafted := 0
	for off := 0; off < len(b); off += slot {
		s := b[off : off+slot]
		if string(s[:8]) != "PTCKPT01" {
			continue
		}
		binary.BigEndian.PutUint64(s[countAt:], n)
		sum := sha256.Sum256(s[:sumAt])
		copy(s[sumAt:], sum[:])
		crafted++
	}
	if crafted == 0 {
		t.Fatalf("checkpoint %s holds no record to craft", path)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// FirstBatch returns the rows of the first batch apply makes of a section
// with the given batch size, and the manifest index of its first row.
func (f *Fixture) FirstBatch(stage, table string, size int) (int, []manifest.Row) {
	for i, r := range f.Rows {
		if r.Stage == stage && r.Table == table {
			end := i
			for end < len(f.Rows) && end-i < size && f.Rows[end].Stage == stage && f.Rows[end].Table == table {
				end++
			}
			return i, f.Rows[i:end]
		}
	}
	return -1, nil
}

// InsertSessions inserts a sessionTokens row for each manifest row (its id,
// uid and createdAt), as the data a plan listed them from.
func InsertSessions(t testing.TB, db *sql.DB, rows []manifest.Row) {
	t.Helper()
	for len(rows) > 0 {
		n := min(len(rows), 1000)
		args := make([]any, 0, 4*n)
		for _, r := range rows[:n] {
			args = append(args, r.ID, r.ID, r.UID, r.CreatedAt)
		}
		q := "INSERT INTO sessionTokens (tokenId, tokenData, uid, createdAt) VALUES " +
			strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?), ", n), ", ")
		if _, err := db.Exec(q, args...); err != nil {
			t.Fatalf("insert sessions: %v", err)
		}
		rows = rows[n:]
	}
}
