package applier

import (
	"bytes"
	"fmt"
	"math"
	"reflect"
	"testing"

	"prune-tokens/manifest"
)

func b(c byte, n int) []byte { return bytes.Repeat([]byte{c}, n) }

func TestSQLBuilders(t *testing.T) {
	id1, id2 := b(1, 32), b(2, 32)
	u1, u2 := b(0xa, 16), b(0xb, 16)
	c1, c2 := int64(1700000000001), int64(1700000000002)
	two := []manifest.Row{{ID: id1, UID: u1, CreatedAt: c1}, {ID: id2, UID: u2, CreatedAt: c2}}
	one := two[:1]
	type built struct {
		q    string
		args []any
		err  error
	}
	with := func(q string, args []any, err error) built { return built{q, args, err} }
	without := func(q string, args []any) built { return built{q, args, nil} }
	cases := []struct {
		name     string
		got      built
		wantQ    string
		wantArgs []any
	}{
		{"select sessions, locking", without(selectSessionsSQL(two, true)),
			"SELECT s.tokenId, s.uid, s.createdAt, d.id, u.tokenId FROM sessionTokens s LEFT JOIN devices d ON d.uid = s.uid AND d.sessionTokenId = s.tokenId LEFT JOIN unverifiedTokens u ON u.tokenId = s.tokenId WHERE s.tokenId IN (?, ?) FOR UPDATE",
			[]any{id1, id2}},
		{"select sessions, dry run", without(selectSessionsSQL(one, false)),
			"SELECT s.tokenId, s.uid, s.createdAt, d.id, u.tokenId FROM sessionTokens s LEFT JOIN devices d ON d.uid = s.uid AND d.sessionTokenId = s.tokenId LEFT JOIN unverifiedTokens u ON u.tokenId = s.tokenId WHERE s.tokenId IN (?)",
			[]any{id1}},
		{"select tokens", with(selectRowsSQL(manifest.TableAccountResetTokens, two, true)),
			"SELECT tokenId, uid, createdAt FROM accountResetTokens WHERE tokenId IN (?, ?) FOR UPDATE", []any{id1, id2}},
		{"select signin codes", with(selectRowsSQL(manifest.TableSigninCodes, one, false)),
			"SELECT hash, uid, createdAt FROM signinCodes WHERE hash IN (?)", []any{id1}},
		{"select unblock codes by (uid, hash)", with(selectRowsSQL(manifest.TableUnblockCodes, two, true)),
			"SELECT unblockCodeHash, uid, createdAt FROM unblockCodes WHERE (uid = ? AND unblockCodeHash = ?) OR (uid = ? AND unblockCodeHash = ?) FOR UPDATE",
			[]any{u1, id1, u2, id2}},
		{"delete sessions", with(deleteRowsSQL(manifest.TableSessionTokens, two)),
			"DELETE FROM sessionTokens WHERE tokenId IN (?, ?)", []any{id1, id2}},
		{"delete password change tokens", with(deleteRowsSQL(manifest.TablePasswordChangeTokens, one)),
			"DELETE FROM passwordChangeTokens WHERE tokenId IN (?)", []any{id1}},
		{"delete forgot tokens", with(deleteRowsSQL(manifest.TablePasswordForgotTokens, one)),
			"DELETE FROM passwordForgotTokens WHERE tokenId IN (?)", []any{id1}},
		{"delete unblock codes", with(deleteRowsSQL(manifest.TableUnblockCodes, one)),
			"DELETE FROM unblockCodes WHERE (uid = ? AND unblockCodeHash = ?)", []any{u1, id1}},
		{"delete unverified", without(deleteUnverifiedSQL(two)),
			"DELETE FROM unverifiedTokens WHERE tokenId IN (?, ?)", []any{id1, id2}},
		{"delete devices names uid", without(deleteDevicesSQL(two)),
			"DELETE FROM devices WHERE (uid = ? AND sessionTokenId = ?) OR (uid = ? AND sessionTokenId = ?)",
			[]any{u1, id1, u2, id2}},
		{"sessions read for the fast path: devices joined by uid, locked", without(selectSessionsForDeleteSQL(two)),
			"SELECT s.tokenId, s.uid, s.createdAt, d.id FROM sessionTokens s FORCE INDEX (PRIMARY) LEFT JOIN devices d ON d.uid = s.uid AND d.sessionTokenId = s.tokenId WHERE s.tokenId IN (?, ?) FOR UPDATE",
			[]any{id1, id2}},
		{"token-age sessions deleted with their unverified rows", without(deleteSessionsSQL(manifest.StageTokenAge, two)),
			"DELETE s, u FROM sessionTokens s FORCE INDEX (PRIMARY) LEFT JOIN unverifiedTokens u ON u.tokenId = s.tokenId WHERE s.tokenId IN (?, ?)",
			[]any{id1, id2}},
		{"max-sessions sessions deleted with unverified rows and devices of the same uid", without(deleteSessionsSQL(manifest.StageMaxSessions, one)),
			"DELETE s, u, d FROM sessionTokens s FORCE INDEX (PRIMARY) LEFT JOIN unverifiedTokens u ON u.tokenId = s.tokenId LEFT JOIN devices d ON d.uid = s.uid AND d.sessionTokenId = s.tokenId WHERE s.tokenId IN (?)",
			[]any{id1}},
		{"exact delete, signin codes", with(deleteExactSQL(manifest.TableSigninCodes, one)),
			"DELETE t FROM signinCodes t FORCE INDEX (PRIMARY) WHERE (t.hash, t.uid, t.createdAt) IN ((?, ?, ?))",
			[]any{id1, u1, c1}},
		{"exact delete, unblock codes by (uid, hash)", with(deleteExactSQL(manifest.TableUnblockCodes, two)),
			"DELETE t FROM unblockCodes t FORCE INDEX (PRIMARY) WHERE (t.uid, t.unblockCodeHash, t.createdAt) IN ((?, ?, ?), (?, ?, ?))",
			[]any{u1, id1, c1, u2, id2, c2}},
		{"an account's maxSessions-th newest session, locked", without(rankCutSQL(u1, 5, true)),
			"SELECT createdAt, tokenId FROM sessionTokens WHERE uid = ? ORDER BY createdAt DESC, tokenId DESC LIMIT 1 OFFSET 4 LOCK IN SHARE MODE", []any{u1}},
		{"the same for the dry run", without(rankCutSQL(u1, 1, false)),
			"SELECT createdAt, tokenId FROM sessionTokens WHERE uid = ? ORDER BY createdAt DESC, tokenId DESC LIMIT 1 OFFSET 0", []any{u1}},
		{"keys still there", with(presentKeysSQL(manifest.TableSessionTokens, two)),
			"SELECT tokenId FROM sessionTokens WHERE tokenId IN (?, ?)", []any{id1, id2}},
		{"unblock code keys still there", with(presentKeysSQL(manifest.TableUnblockCodes, one)),
			"SELECT uid, unblockCodeHash FROM unblockCodes WHERE (uid = ? AND unblockCodeHash = ?)", []any{u1, id1}},
	}
	guarded := guardedSessionsSQL([]manifest.Row{two[1], two[0]}) // any order: the range is lowest to highest
	m1, m2 := planMatch(two[0]), planMatch(two[1])
	for i, want := range []struct {
		q    string
		args []any
	}{
		{"SELECT COUNT(*) INTO @prune_tokens_unverified FROM unverifiedTokens FORCE INDEX (PRIMARY) WHERE tokenId BETWEEN ? AND ?", []any{id1, id2}},
		{"DELETE s, u FROM sessionTokens s FORCE INDEX (PRIMARY) LEFT JOIN unverifiedTokens u ON u.tokenId = s.tokenId LEFT JOIN devices d ON d.uid = s.uid AND d.sessionTokenId = s.tokenId" +
			" WHERE s.tokenId IN (?, ?) AND d.id IS NULL AND CONCAT(s.tokenId, s.uid, s.createdAt) IN (?, ?)", []any{id2, id1, m2, m1}},
		{"SELECT ROW_COUNT(), @prune_tokens_unverified - COUNT(*) FROM unverifiedTokens FORCE INDEX (PRIMARY) WHERE tokenId BETWEEN ? AND ?", []any{id1, id2}},
	} {
		cases = append(cases, struct {
			name     string
			got      built
			wantQ    string
			wantArgs []any
		}{fmt.Sprintf("guarded token-age sessions, statement %d", i+1), without(guarded[i].query, guarded[i].args), want.q, want.args})
	}
	for _, c := range cases {
		if c.got.err != nil {
			t.Errorf("%s: %v", c.name, c.got.err)
			continue
		}
		if c.got.q != c.wantQ {
			t.Errorf("%s:\n got %s\nwant %s", c.name, c.got.q, c.wantQ)
		}
		if !reflect.DeepEqual(c.got.args, c.wantArgs) {
			t.Errorf("%s: args %x, want %x", c.name, c.got.args, c.wantArgs)
		}
	}
}

// The plan match is the bytes MariaDB's CONCAT(tokenId, uid, createdAt)
// gives: key, uid, createdAt in decimal.
func TestPlanMatch(t *testing.T) {
	r := manifest.Row{ID: b(1, 32), UID: b(2, 16), CreatedAt: 1700000000123}
	want := append(append(b(1, 32), b(2, 16)...), "1700000000123"...)
	if got := planMatch(r); !bytes.Equal(got, want) {
		t.Errorf("planMatch = %q, want %q", got, want)
	}
}

// No table name outside the allow-list ever reaches SQL, whatever the row
// says: keyFetchTokens, devices and injection attempts are refused.
func TestSQLBuildersRefuseUnknownTables(t *testing.T) {
	rows := []manifest.Row{{ID: b(1, 32), UID: b(2, 16)}}
	for _, table := range []string{"keyFetchTokens", "devices", "unverifiedTokens", "sessionTokens; DROP TABLE x", ""} {
		if _, _, err := selectRowsSQL(table, rows, true); err == nil {
			t.Errorf("select from %q was built", table)
		}
		if _, _, err := deleteRowsSQL(table, rows); err == nil {
			t.Errorf("delete from %q was built", table)
		}
		if _, _, err := deleteExactSQL(table, rows); err == nil {
			t.Errorf("exact delete from %q was built", table)
		}
		if _, _, err := presentKeysSQL(table, rows); err == nil {
			t.Errorf("key read of %q was built", table)
		}
	}
}

func TestClassify(t *testing.T) {
	r := func(stage, table string, id byte, created int64) manifest.Row {
		return manifest.Row{Stage: stage, Table: table, ID: b(id, 32), UID: b(id, 16), CreatedAt: created}
	}
	ta := manifest.Section{Stage: manifest.StageTokenAge, Table: manifest.TableSessionTokens}
	ms := manifest.Section{Stage: manifest.StageMaxSessions, Table: manifest.TableSessionTokens}
	rows := []manifest.Row{r(ta.Stage, ta.Table, 1, 10), r(ta.Stage, ta.Table, 2, 20), r(ta.Stage, ta.Table, 3, 30), r(ta.Stage, ta.Table, 4, 40), r(ta.Stage, ta.Table, 5, 50)}
	found := map[string]current{
		string(b(1, 32)): {uid: b(1, 16), createdAt: 10},               // as planned
		string(b(2, 32)): {uid: b(2, 16), createdAt: 20, device: true}, // gained a device
		string(b(3, 32)): {uid: b(9, 16), createdAt: 30},               // another account's row
		string(b(4, 32)): {uid: b(4, 16), createdAt: 41},               // another createdAt
		// 5 is gone
	}
	el, _, c := classify(ta, rows, found)
	if len(el) != 1 || !bytes.Equal(el[0].ID, b(1, 32)) || c != (Counts{Gone: 1, Skipped: 3}) {
		t.Errorf("token-age: eligible %d, counts %+v", len(el), c)
	}
	// max-sessions deletes sessions with devices (and the devices).
	for i := range rows {
		rows[i].Stage = ms.Stage
	}
	el, cur, c := classify(ms, rows, found)
	if len(el) != 2 || !cur[1].device || c != (Counts{Gone: 1, Skipped: 2}) {
		t.Errorf("max-sessions: eligible %d, counts %+v", len(el), c)
	}
}

func TestSortByKey(t *testing.T) {
	rows := []manifest.Row{
		{Table: manifest.TableUnblockCodes, UID: b(2, 16), ID: b(1, 32)},
		{Table: manifest.TableUnblockCodes, UID: b(1, 16), ID: b(9, 32)},
	}
	got := sortByKey(rows)
	if !bytes.Equal(got[0].UID, b(1, 16)) || !bytes.Equal(rows[0].UID, b(2, 16)) {
		t.Errorf("unblockCodes sort by (uid, hash) without touching the input: %x", got[0].UID)
	}
	// Rows already in key order (as a format-2 manifest lists them) come
	// back in that order, still a copy.
	sorted := sortByKey(got)
	sorted[0] = rows[0]
	if !bytes.Equal(got[0].UID, b(1, 16)) || !bytes.Equal(got[1].UID, b(2, 16)) {
		t.Errorf("sorted input changed: %x, %x", got[0].UID, got[1].UID)
	}
}

func TestInlineHex(t *testing.T) {
	got, err := inlineHex("SELECT ? IN (?, ?)", []any{[]byte{0x00, 0x27, 0x5c, 0xff}, int64(-12), []byte{}})
	if want := `SELECT X'00275cff' IN (-12, X'')`; err != nil || got != want {
		t.Errorf("inlineHex = %q, %v; want %q", got, err, want)
	}
	got, err = inlineHex("?, ?;", []any{int64(math.MinInt64), int64(math.MaxInt64)})
	if want := "-9223372036854775808, 9223372036854775807;"; err != nil || got != want {
		t.Errorf("inlineHex = %q, %v; want %q", got, err, want)
	}
	for _, c := range []struct {
		q    string
		args []any
	}{
		{"SELECT ?, ?", []any{int64(1)}},
		{"SELECT ?", []any{int64(1), int64(2)}},
		{"SELECT ?", []any{"a string"}},
		{"SELECT ?", []any{42}},
	} {
		if got, err := inlineHex(c.q, c.args); err == nil {
			t.Errorf("inlineHex(%q, %v) = %q, want an error", c.q, c.args, got)
		}
	}
}
