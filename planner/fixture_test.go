package planner

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"prune-tokens/internal/test/dbtest"
	"prune-tokens/manifest"
)

// id32 and uid16 make ids whose byte order is their numeric order, so a
// test can say which of two tied rows sorts first.
func id32(n int) []byte {
	b := make([]byte, 32)
	binary.BigEndian.PutUint64(b[24:], uint64(n))
	b[0] = 0x5e // keep ids of different kinds apart in a hex dump
	return b
}

func uid16(n int) []byte {
	b := make([]byte, 16)
	binary.BigEndian.PutUint64(b[8:], uint64(n))
	return b
}

// fixture is the test data, inserted into a fresh database and mirrored in
// Go so a test can compute what plan must list.
type fixture struct {
	sessions    []row // id = tokenId
	devices     []device
	tokens      map[string][]row // accountResetTokens, passwordForgotTokens, passwordChangeTokens, keyFetchTokens
	unblock     []row            // id = unblockCodeHash
	signin      []row            // id = hash
	unverifiedN int              // sessions given an unverifiedTokens row
}

type row struct {
	id, uid   []byte
	createdAt int64
}

type device struct {
	uid, id, sessionTokenID []byte
}

func newFixture() *fixture { return &fixture{tokens: map[string][]row{}} }

func (f *fixture) session(id, uid int, createdAt int64) {
	f.sessions = append(f.sessions, row{id32(id), uid16(uid), createdAt})
}

func (f *fixture) device(uid, devID, sessionID int) {
	f.devices = append(f.devices, device{uid16(uid), uid16(devID), id32(sessionID)})
}

func (f *fixture) token(table string, id, uid int, createdAt int64) {
	f.tokens[table] = append(f.tokens[table], row{id32(id), uid16(uid), createdAt})
}

// insert writes the fixture with multi-row INSERTs.
func (f *fixture) insert(t testing.TB, db *dbtest.DB) {
	t.Helper()
	ins := func(head string, n int, per string, args func(i int) []any) {
		const chunk = 500
		for lo := 0; lo < n; lo += chunk {
			hi := min(lo+chunk, n)
			var sb strings.Builder
			sb.WriteString(head)
			var all []any
			for i := lo; i < hi; i++ {
				if i > lo {
					sb.WriteString(",")
				}
				sb.WriteString(per)
				all = append(all, args(i)...)
			}
			if _, err := db.SQL.Exec(sb.String(), all...); err != nil {
				t.Fatalf("%s: %v", head, err)
			}
		}
	}
	secret := bytes.Repeat([]byte{0xee}, 32)
	ins("INSERT INTO sessionTokens (tokenId, tokenData, uid, createdAt, lastAccessTime) VALUES ", len(f.sessions), "(?,?,?,?,?)",
		func(i int) []any { s := f.sessions[i]; return []any{s.id, secret, s.uid, s.createdAt, s.createdAt} })
	ins("INSERT INTO unverifiedTokens (tokenId, tokenVerificationId, uid) VALUES ", min(f.unverifiedN, len(f.sessions)), "(?,?,?)",
		func(i int) []any { s := f.sessions[i]; return []any{s.id, uid16(i), s.uid} })
	ins("INSERT INTO devices (uid, id, sessionTokenId, createdAt) VALUES ", len(f.devices), "(?,?,?,1)",
		func(i int) []any { d := f.devices[i]; return []any{d.uid, d.id, d.sessionTokenID} })
	for table, rows := range f.tokens {
		var head, per string
		var extra []any
		switch table {
		case "accountResetTokens", "passwordChangeTokens":
			head, per = "INSERT INTO "+table+" (tokenId, tokenData, uid, createdAt) VALUES ", "(?,?,?,?)"
		case "passwordForgotTokens":
			head, per, extra = "INSERT INTO "+table+" (tokenId, tokenData, uid, createdAt, passCode, tries) VALUES ", "(?,?,?,?,?,1)", []any{uid16(7)}
		case "keyFetchTokens":
			head, per, extra = "INSERT INTO "+table+" (tokenId, authKey, uid, createdAt, keyBundle) VALUES ", "(?,?,?,?,?)", []any{bytes.Repeat([]byte{1}, 96)}
		default:
			t.Fatalf("fixture: unknown table %s", table)
		}
		ins(head, len(rows), per, func(i int) []any {
			r := rows[i]
			return append([]any{r.id, secret, r.uid, r.createdAt}, extra...)
		})
	}
	ins("INSERT INTO unblockCodes (uid, unblockCodeHash, createdAt) VALUES ", len(f.unblock), "(?,?,?)",
		func(i int) []any { r := f.unblock[i]; return []any{r.uid, r.id, r.createdAt} })
	ins("INSERT INTO signinCodes (hash, uid, createdAt) VALUES ", len(f.signin), "(?,?,?)",
		func(i int) []any { r := f.signin[i]; return []any{r.id, r.uid, r.createdAt} })
}

// expect is a straightforward model of the rules of the reference, written
// independently of the SQL: the rows plan must list, in manifest order, and
// the accounts max-sessions trims.
func (f *fixture) expect(o Options) ([]manifest.Row, []manifest.Account) {
	var out []manifest.Row
	var top []manifest.Account
	byAge := func(a, b row) int {
		if a.createdAt != b.createdAt {
			if a.createdAt < b.createdAt {
				return -1
			}
			return 1
		}
		return bytes.Compare(a.id, b.id)
	}
	idKey := func(r row) []byte { return r.id }
	claimed := map[string]bool{}
	if o.MaxSessions > 0 {
		perUID := map[string][]row{}
		for _, s := range f.sessions {
			perUID[string(s.uid)] = append(perUID[string(s.uid)], s)
		}
		var uids []string
		for u, ss := range perUID {
			if int64(len(ss)) > o.MaxSessions {
				uids = append(uids, u)
			}
		}
		slices.SortFunc(uids, func(a, b string) int {
			if len(perUID[a]) != len(perUID[b]) {
				return len(perUID[b]) - len(perUID[a])
			}
			return strings.Compare(a, b)
		})
		if int64(len(uids)) > o.MaxSessionsMaxAccounts {
			uids = uids[:o.MaxSessionsMaxAccounts]
		}
		for _, u := range uids {
			ss := slices.Clone(perUID[u])
			slices.SortFunc(ss, byAge)
			n := min(int64(len(ss))-o.MaxSessions, o.MaxSessionsMaxDeletions)
			top = append(top, manifest.Account{UID: fmt.Sprintf("%x", u), Sessions: int64(len(ss)), ToDelete: n})
			for _, s := range ss[:n] {
				claimed[string(s.id)] = true
				out = append(out, manifest.Row{Stage: manifest.StageMaxSessions, Table: manifest.TableSessionTokens, ID: s.id, UID: s.uid, CreatedAt: s.createdAt})
			}
		}
	}
	// older lists a table's rows older than cutoff that keep allows: the
	// oldest limit of them (by createdAt, then key), in primary-key order.
	older := func(stage, table string, rows []row, cutoff int64, keep func(row) bool, limit int64, key func(r row) []byte) {
		var sel []row
		for _, r := range rows {
			if r.createdAt < cutoff && (keep == nil || keep(r)) {
				sel = append(sel, r)
			}
		}
		slices.SortFunc(sel, func(a, b row) int {
			return byAge(row{key(a), nil, a.createdAt}, row{key(b), nil, b.createdAt})
		})
		if limit > 0 && int64(len(sel)) > limit {
			sel = sel[:limit]
		}
		slices.SortFunc(sel, func(a, b row) int { return bytes.Compare(key(a), key(b)) })
		for _, r := range sel {
			out = append(out, manifest.Row{Stage: stage, Table: table, ID: r.id, UID: r.uid, CreatedAt: r.createdAt})
		}
	}
	tokenCutoff, codeCutoff := o.Cutoffs()
	if tokenCutoff != 0 {
		for _, table := range []string{manifest.TableAccountResetTokens, manifest.TablePasswordForgotTokens, manifest.TablePasswordChangeTokens} {
			older(manifest.StageTokenAge, table, f.tokens[table], tokenCutoff, nil, 0, idKey)
		}
		hasDevice := map[string]bool{}
		for _, d := range f.devices {
			hasDevice[string(d.uid)+string(d.sessionTokenID)] = true
		}
		older(manifest.StageTokenAge, manifest.TableSessionTokens, f.sessions, tokenCutoff, func(r row) bool {
			return !hasDevice[string(r.uid)+string(r.id)] && !claimed[string(r.id)]
		}, o.MaxTokenAgeWindowSize, idKey)
	}
	if codeCutoff != 0 {
		older(manifest.StageCodeAge, manifest.TableUnblockCodes, f.unblock, codeCutoff, nil, 0, func(r row) []byte {
			return append(slices.Clone(r.uid), r.id...)
		})
		older(manifest.StageCodeAge, manifest.TableSigninCodes, f.signin, codeCutoff, nil, 0, idKey)
	}
	return out, top
}

// planned is one plan run's output, read back from the committed file.
type planned struct {
	rows []manifest.Row
	res  *Result
	meta *manifest.Meta
	path string
}

func runPlan(t testing.TB, db *dbtest.DB, o Options) planned {
	t.Helper()
	path := filepath.Join(t.TempDir(), "plan.parquet")
	w, err := manifest.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Plan(context.Background(), db.SQL, o, w)
	if err != nil {
		w.Abort()
		t.Fatalf("Plan: %v", err)
	}
	tc, cc := o.Cutoffs()
	if _, err := w.Commit(manifest.Meta{ToolVersion: "test", PlannedAt: time.Now(), Now: o.Now, TokenCutoff: tc, CodeCutoff: cc,
		TopAccounts: res.TopAccounts, Flags: map[string]string{"maxSessions": strconv.FormatInt(o.MaxSessions, 10)}}); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	r, err := manifest.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.Verify(); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	var rows []manifest.Row
	it := r.Rows(0)
	for row, ok := it.Next(); ok; row, ok = it.Next() {
		rows = append(rows, row)
	}
	if it.Err() != nil {
		t.Fatal(it.Err())
	}
	return planned{rows: rows, res: res, meta: r.Meta(), path: path}
}

func fmtRow(r manifest.Row) string {
	return fmt.Sprintf("%s/%s id=…%x uid=…%x createdAt=%d", r.Stage, r.Table, r.ID[24:], r.UID[8:], r.CreatedAt)
}

// sameRows compares row by row and reports the first differences readably.
func sameRows(t testing.TB, got, want []manifest.Row) {
	t.Helper()
	n := max(len(got), len(want))
	bad := 0
	for i := 0; i < n && bad < 10; i++ {
		switch {
		case i >= len(got):
			t.Errorf("row %d missing: want %s", i, fmtRow(want[i]))
			bad++
		case i >= len(want):
			t.Errorf("row %d extra: got %s", i, fmtRow(got[i]))
			bad++
		case got[i].Stage != want[i].Stage || got[i].Table != want[i].Table || !bytes.Equal(got[i].ID, want[i].ID) ||
			!bytes.Equal(got[i].UID, want[i].UID) || got[i].CreatedAt != want[i].CreatedAt:
			t.Errorf("row %d:\n got  %s\n want %s", i, fmtRow(got[i]), fmtRow(want[i]))
			bad++
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %d rows, want %d", len(got), len(want))
	}
}
