package applier

import (
	"context"
	"database/sql"
	"encoding/hex"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"prune-tokens/internal/test/appliertest"
	"prune-tokens/internal/test/dbtest"
	"prune-tokens/manifest"
)

// TestGuardsHoldUnderConcurrentChanges runs apply in small batches while
// another client, as the service would, gives listed token-age sessions a
// device, deletes listed rows and changes listed codes. Whatever the
// interleaving, apply must delete only rows still as planned, never a
// token-age session that had a device, and a session's unverifiedTokens
// and devices rows exactly when it deleted the session; its counts must
// match what happened.
func TestGuardsHoldUnderConcurrentChanges(t *testing.T) {
	for _, c := range []struct {
		name  string
		force forcedPath
	}{{"guarded", pathChosen}, {"locked", pathPortable}} {
		t.Run(c.name, func(t *testing.T) { guardsUnderChanges(t, c.force) })
	}
}

func guardsUnderChanges(t *testing.T, force forcedPath) {
	db := dbtest.New(t)
	f := appliertest.New(t, db, 21, appliertest.Sizes{MaxSessionAccounts: 3, SessionsPerAccount: 30, TokenAgeSessions: 240, OtherTokens: 40})
	path, _ := f.Manifest(t, t.TempDir())
	ctx := context.Background()

	// Dependants before the run: a session's unverified row and devices.
	unverified := appliertest.Keys(t, db.SQL, "unverifiedTokens")
	devicesOf := map[string][]string{} // session id (hex) -> device keys
	rows, err := db.SQL.Query("SELECT uid, id, sessionTokenId FROM devices WHERE sessionTokenId IS NOT NULL")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var uid, id, sid []byte
		if err := rows.Scan(&uid, &id, &sid); err != nil {
			t.Fatal(err)
		}
		devicesOf[string(uid)+string(sid)] = append(devicesOf[string(uid)+string(sid)], string(uid)+string(id))
	}
	rows.Close()

	// The other client: one change per row, at random, while apply runs.
	type change int
	const (
		none change = iota
		deletedByOther
		gotDevice // the session existed when its device was added
		changedCreatedAt
	)
	changes := make([]change, len(f.Rows))
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		rnd := rand.New(rand.NewPCG(1, 2))
		for !stop.Load() {
			i := rnd.IntN(len(f.Rows))
			if changes[i] != none {
				continue
			}
			r := f.Rows[i]
			switch {
			case r.Stage == manifest.StageTokenAge && r.Table == manifest.TableSessionTokens && rnd.IntN(2) == 0:
				if addDeviceIfPresent(t, db.SQL, r) {
					changes[i] = gotDevice
				}
			case r.Table == manifest.TableSigninCodes && rnd.IntN(2) == 0:
				if affected(t, db.SQL, "UPDATE signinCodes SET createdAt = createdAt + 1 WHERE hash = ?", r.ID) == 1 {
					changes[i] = changedCreatedAt
				}
			default:
				if deleteListed(t, db.SQL, r) {
					changes[i] = deletedByOther
				}
			}
			time.Sleep(time.Duration(rnd.IntN(3)) * time.Millisecond)
		}
	}()
	o := options(t, db, path)
	o.force = force
	o.BatchSize = 5
	o.Wait = time.Millisecond
	res, err := Run(ctx, o)
	stop.Store(true)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}

	present := map[string]map[string]bool{}
	for _, table := range []string{"sessionTokens", "unverifiedTokens", "devices", "accountResetTokens", "passwordForgotTokens", "passwordChangeTokens", "unblockCodes", "signinCodes"} {
		present[table] = appliertest.Keys(t, db.SQL, table)
	}
	hexKey := func(b []byte) string { return appliertestHex(b) }
	perSection := map[manifest.Section]*Counts{}
	var others int
	for i, r := range f.Rows {
		c := perSection[r.Section()]
		if c == nil {
			c = &Counts{}
			perSection[r.Section()] = c
		}
		here := present[r.Table][hexKey(r.Key())]
		byApply := !here && changes[i] != deletedByOther
		if byApply {
			c.Deleted++
		}
		if changes[i] != none {
			others++
		}
		switch changes[i] {
		case deletedByOther:
			if here {
				t.Errorf("row %d deleted by the other client is back", i)
			}
		case gotDevice:
			if !here {
				t.Errorf("token-age session %d was deleted although it had a device", i)
			}
		case changedCreatedAt:
			if !here {
				t.Errorf("code %d was deleted although its createdAt changed after the plan", i)
			}
		}
		if r.Table != manifest.TableSessionTokens {
			continue
		}
		if byApply && unverified[hexKey(r.ID)] {
			c.Unverified++
		}
		if byApply && r.Stage == manifest.StageMaxSessions {
			c.Devices += int64(len(devicesOf[string(r.UID)+string(r.ID)]))
		}
		if unverified[hexKey(r.ID)] && present["unverifiedTokens"][hexKey(r.ID)] == byApply {
			t.Errorf("session %d (deleted by apply: %v): its unverifiedTokens row present = %v", i, byApply, !byApply)
		}
		if r.Stage == manifest.StageMaxSessions {
			for _, d := range devicesOf[string(r.UID)+string(r.ID)] {
				if present["devices"][hexKey([]byte(d))] == byApply {
					t.Errorf("max-sessions session %d (deleted by apply: %v): its device present = %v", i, byApply, !byApply)
				}
			}
		}
	}
	if others < len(f.Rows)/10 {
		t.Fatalf("the other client changed only %d of %d rows: the test proves little", others, len(f.Rows))
	}
	for _, s := range res.Sections {
		want := perSection[s.Section]
		if s.Deleted != want.Deleted || s.Unverified != want.Unverified || s.Devices != want.Devices || s.Processed() != s.Planned {
			t.Errorf("%s: apply says %+v of %d planned; %d listed rows are gone that the other client did not delete, with %d unverifiedTokens and %d devices rows",
				s.Section, s.Counts, s.Planned, want.Deleted, want.Unverified, want.Devices)
		}
	}
	t.Logf("%d rows changed by the other client; apply: %+v", others, res.Sections)
}

// addDeviceIfPresent gives a session a device, as the service does on
// sign-in, holding the session's row lock so that the session exists when
// the device appears; it reports whether it did.
func addDeviceIfPresent(t *testing.T, db *sql.DB, r manifest.Row) bool {
	t.Helper()
	tx, err := db.Begin()
	if err != nil {
		t.Error(err)
		return false
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRow("SELECT COUNT(*) FROM sessionTokens WHERE tokenId = ? FOR UPDATE", r.ID).Scan(&n); err != nil {
		return false // a lock wait or deadlock with apply: try another row
	}
	if n == 0 {
		return false
	}
	id := make([]byte, 16)
	for i := range id {
		id[i] = byte(rand.Uint32())
	}
	if _, err := tx.Exec("INSERT INTO devices (uid, id, sessionTokenId, createdAt) VALUES (?, ?, ?, 1)", r.UID, id, r.ID); err != nil {
		return false
	}
	return tx.Commit() == nil
}

// deleteListed deletes a listed row as someone else would; it reports
// whether the row was there to delete.
func deleteListed(t *testing.T, db *sql.DB, r manifest.Row) bool {
	q, args := appliertest.DeleteRowSQL(r)
	return affected(t, db, q, args...) == 1
}

// affected runs a statement and returns the rows it changed; a lock wait or
// deadlock with apply counts as none.
func affected(t *testing.T, db *sql.DB, q string, args ...any) int64 {
	res, err := db.Exec(q, args...)
	if err != nil {
		return 0
	}
	n, _ := res.RowsAffected()
	return n
}

func appliertestHex(b []byte) string { return hex.EncodeToString(b) }
