package applier

import (
	"bytes"
	"context"
	"database/sql"
	"slices"
	"testing"

	"github.com/go-sql-driver/mysql"

	"prune-tokens/internal/test/dbtest"
	"prune-tokens/manifest"
)

// TestGuardedSessionBatch runs one batch of token-age sessions, every kind
// of listed row in it, as one batch and one session at a time: both must
// delete the same rows, leave an unlisted session between listed keys and
// the unverifiedTokens row of a session already gone, and count the same.
func TestGuardedSessionBatch(t *testing.T) {
	for _, name := range []string{"one batch", "one at a time"} {
		t.Run(name, func(t *testing.T) {
			db := dbtest.New(t)
			key := func(first byte) []byte { return append([]byte{first}, bytes.Repeat([]byte{first}, 31)...) }
			uid, otherUID := bytes.Repeat([]byte{0xaa}, 16), bytes.Repeat([]byte{0xbb}, 16)
			const created = int64(1700000000000)
			row := func(first byte) manifest.Row {
				return manifest.Row{Stage: manifest.StageTokenAge, Table: manifest.TableSessionTokens, ID: key(first), UID: uid, CreatedAt: created}
			}
			session := func(first byte, u []byte, c int64) {
				mustExec(t, db.SQL, "INSERT INTO sessionTokens (tokenId, tokenData, uid, createdAt) VALUES (?, ?, ?, ?)", key(first), key(first), u, c)
			}
			unverified := func(first byte) {
				mustExec(t, db.SQL, "INSERT INTO unverifiedTokens (tokenId, tokenVerificationId, uid) VALUES (?, ?, ?)", key(first), key(first)[:16], uid)
			}
			session(0x10, uid, created) // as planned, with an unverified row: deleted with it
			unverified(0x10)
			session(0x20, uid, created) // as planned: deleted
			session(0x30, uid, created) // has a device now: skipped, with its unverified row
			unverified(0x30)
			mustExec(t, db.SQL, "INSERT INTO devices (uid, id, sessionTokenId) VALUES (?, ?, ?)", uid, key(0x30)[:16], key(0x30))
			session(0x40, uid, created+1)    // createdAt changed: skipped
			unverified(0x45)                 // 0x45: gone; its unverified row stays
			session(0x50, otherUID, created) // another account's row now: skipped
			session(0x55, uid, created)      // not listed, inside the range: stays
			unverified(0x55)
			session(0x60, uid, created) // as planned, with an unverified row
			unverified(0x60)
			rows := []manifest.Row{row(0x60), row(0x10), row(0x20), row(0x30), row(0x40), row(0x45), row(0x50)}

			cfg, err := mysql.ParseDSN(db.DSN)
			if err != nil {
				t.Fatal(err)
			}
			cfg.MultiStatements = true
			pool, err := sql.Open("mysql", cfg.FormatDSN())
			if err != nil {
				t.Fatal(err)
			}
			defer pool.Close()
			ctx := context.Background()
			conn, err := pool.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			sec := manifest.Section{Stage: manifest.StageTokenAge, Table: manifest.TableSessionTokens}
			var out outcome
			if name == "one at a time" {
				// A batch of one counts nothing: its DELETE's count says it all.
				for _, r := range rows {
					o, err := deleteBatchFast(ctx, conn, sec, []manifest.Row{r}, nil, nil)
					if err != nil {
						t.Fatal(err)
					}
					out.add(o.Counts)
					out.removed = append(out.removed, o.removed...)
				}
			} else {
				// While the batch's transaction is open, the service deletes
				// the unlisted session 0x55 between listed keys, and its
				// unverifiedTokens row: the batch holds no lock on them, so
				// neither waits (a lock wait would fail after a second).
				other, err := db.SQL.Conn(ctx)
				if err != nil {
					t.Fatal(err)
				}
				defer other.Close()
				mustExecConn(t, other, "SET SESSION innodb_lock_wait_timeout = 1")
				service := func() error {
					for _, q := range []string{"DELETE FROM unverifiedTokens WHERE tokenId = ?", "DELETE FROM sessionTokens WHERE tokenId = ?"} {
						if _, err := other.ExecContext(ctx, q, key(0x55)); err != nil {
							t.Errorf("the service's %q waited on the open batch: %v", q, err)
						}
					}
					return nil
				}
				if out, err = deleteBatchFast(ctx, conn, sec, rows, nil, service); err != nil {
					t.Fatal(err)
				}
			}
			want := Counts{Deleted: 3, Gone: 1, Skipped: 3, Unverified: 2}
			if out.Counts != want {
				t.Errorf("counts %+v, want %+v", out.Counts, want)
			}
			var removed []byte
			for _, r := range out.removed {
				removed = append(removed, r.ID[0])
			}
			slices.Sort(removed)
			if !bytes.Equal(removed, []byte{0x10, 0x20, 0x45, 0x60}) {
				t.Errorf("removed (for the session cache) %x, want 10 20 45 60", removed)
			}
			left := func(table string) []byte {
				var firsts []byte
				res, err := db.SQL.Query("SELECT tokenId FROM " + table + " ORDER BY tokenId")
				if err != nil {
					t.Fatal(err)
				}
				defer res.Close()
				for res.Next() {
					var id []byte
					if err := res.Scan(&id); err != nil {
						t.Fatal(err)
					}
					firsts = append(firsts, id[0])
				}
				return firsts
			}
			wantSessions, wantUnverified := []byte{0x30, 0x40, 0x50, 0x55}, []byte{0x30, 0x45, 0x55}
			if name == "one batch" { // the service deleted 0x55
				wantSessions, wantUnverified = wantSessions[:3], wantUnverified[:2]
			}
			if got := left("sessionTokens"); !bytes.Equal(got, wantSessions) {
				t.Errorf("sessions left %x, want %x", got, wantSessions)
			}
			if got := left("unverifiedTokens"); !bytes.Equal(got, wantUnverified) {
				t.Errorf("unverifiedTokens left %x, want %x", got, wantUnverified)
			}
		})
	}
}

func mustExecConn(t *testing.T, conn *sql.Conn, q string, args ...any) {
	t.Helper()
	if _, err := conn.ExecContext(context.Background(), q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}
