package applier

import (
	"bytes"
	"context"
	"database/sql"
	"testing"

	"prune-tokens/internal/test/appliertest"
	"prune-tokens/internal/test/dbtest"
	"prune-tokens/manifest"
)

// TestMaxSessionsRankedAtDeleteTime: max-sessions is decided when apply
// deletes, as FxA's limitSessions decided it, not only when plan listed the
// sessions. The fixture's two accounts have 12 sessions each, plan keeps
// the newest 5 (maxSessions 5) and lists the 7 oldest. Then, before apply:
// account A logs out of 4 of its 5 newest sessions, and account B signs in
// 3 new ones. A must keep 5 sessions, its newest (the one left and the 4
// newest listed); B loses its 7 listed and keeps 8. The dry run predicts
// the same, on the fast path and on the portable one.
func TestMaxSessionsRankedAtDeleteTime(t *testing.T) {
	for _, c := range []struct {
		name  string
		force forcedPath
	}{{"fast", pathChosen}, {"portable", pathPortable}} {
		t.Run(c.name, func(t *testing.T) { rankedAtDeleteTime(t, c.force) })
	}
}

func rankedAtDeleteTime(t *testing.T, force forcedPath) {
	db := dbtest.New(t)
	f := appliertest.New(t, db, 41, appliertest.Small)
	path, _ := f.Manifest(t, t.TempDir())
	listed := f.Listed(manifest.StageMaxSessions, manifest.TableSessionTokens)
	a, b := listed[0].UID, listed[len(listed)-1].UID
	if bytes.Equal(a, b) {
		t.Fatal("the fixture has one max-sessions account: the test needs two")
	}
	newest := func(uid []byte, n int) [][]byte {
		rows, err := db.SQL.Query("SELECT tokenId FROM sessionTokens WHERE uid = ? ORDER BY createdAt DESC, tokenId DESC LIMIT ?", uid, n)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var ids [][]byte
		for rows.Next() {
			var id []byte
			if err := rows.Scan(&id); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, id)
		}
		return ids
	}
	for _, id := range newest(a, 4) { // logouts, as the service does them
		mustExec(t, db.SQL, "DELETE FROM unverifiedTokens WHERE tokenId = ?", id)
		mustExec(t, db.SQL, "DELETE FROM devices WHERE uid = ? AND sessionTokenId = ?", a, id)
		mustExec(t, db.SQL, "DELETE FROM sessionTokens WHERE tokenId = ?", id)
	}
	for i := 0; i < 3; i++ { // sign-ins
		id := bytes.Repeat([]byte{0xe0 + byte(i)}, 32)
		mustExec(t, db.SQL, "INSERT INTO sessionTokens (tokenId, tokenData, uid, createdAt) VALUES (?, ?, ?, ?)",
			id, id, b, appliertest.Now+int64(i)+1)
	}
	keepA := newest(a, 5) // what A must keep: its 5 newest now
	devicesOfKeptA := devicesOf(t, db.SQL, a, keepA)

	o := options(t, db, path)
	o.force = force
	o.DryRun, o.Approve = true, ""
	dry, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	o = options(t, db, path)
	o.force = force
	res, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	got := section(res, manifest.StageMaxSessions, manifest.TableSessionTokens).Counts
	if got.Deleted != 3+7 || got.Skipped != 4 {
		t.Errorf("max-sessions: deleted %d, skipped %d; want 10 deleted (3 of A, 7 of B), 4 of A kept back", got.Deleted, got.Skipped)
	}
	if d := section(dry, manifest.StageMaxSessions, manifest.TableSessionTokens).Counts; d.Deleted != got.Deleted || d.Skipped != got.Skipped {
		t.Errorf("the dry run predicted deleted %d, skipped %d; apply did %d, %d", d.Deleted, d.Skipped, got.Deleted, got.Skipped)
	}
	left := newest(a, 100)
	if len(left) != 5 {
		t.Errorf("account A has %d sessions left, want 5 (maxSessions)", len(left))
	}
	for i := range keepA {
		if i >= len(left) || !bytes.Equal(left[i], keepA[i]) {
			t.Errorf("account A kept other sessions than its 5 newest")
			break
		}
	}
	if n := devicesOf(t, db.SQL, a, keepA); n != devicesOfKeptA {
		t.Errorf("account A's kept sessions have %d devices, had %d", n, devicesOfKeptA)
	}
	if n := len(newest(b, 100)); n != 5+3 {
		t.Errorf("account B has %d sessions left, want 8 (its 5 newest and the 3 new ones)", n)
	}
}

// devicesOf counts the devices of uid attached to the sessions ids.
func devicesOf(t *testing.T, db *sql.DB, uid []byte, ids [][]byte) int {
	t.Helper()
	n := 0
	for _, id := range ids {
		var c int
		if err := db.QueryRow("SELECT COUNT(*) FROM devices WHERE uid = ? AND sessionTokenId = ?", uid, id).Scan(&c); err != nil {
			t.Fatal(err)
		}
		n += c
	}
	return n
}
