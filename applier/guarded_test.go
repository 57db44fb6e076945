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
// of listed row in it, both ways a batch of them can go: counting its range
// of unverifiedTokens keys (deleteGuardedSessions) and reading its rows
// first (deleteSessionsFast). Both must delete the same rows, leave an
// unlisted session in the range and the unverifiedTokens row of a session
// already gone, and count the same.
func TestGuardedSessionBatch(t *testing.T) {
	for _, name := range []string{"range counted", "read first", "one at a time"} {
		counted := name != "read first"
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
			var ranges *rangeCount
			if counted {
				ranges = &rangeCount{tableRows: 1}
			}
			sec := manifest.Section{Stage: manifest.StageTokenAge, Table: manifest.TableSessionTokens}
			var out outcome
			if name == "one at a time" {
				// A batch of one counts nothing: its DELETE's count says it all.
				for _, r := range rows {
					o, err := deleteBatchFast(ctx, conn, sec, []manifest.Row{r}, nil, nil, ranges)
					if err != nil {
						t.Fatal(err)
					}
					out.add(o.Counts)
					out.removed = append(out.removed, o.removed...)
				}
			} else if out, err = deleteBatchFast(ctx, conn, sec, rows, nil, nil, ranges); err != nil {
				t.Fatal(err)
			}
			want := Counts{Deleted: 3, Gone: 1, Skipped: 3, Unverified: 2}
			if out.Counts != want {
				t.Errorf("counts %+v, want %+v", out.Counts, want)
			}
			if wantRange := map[string]int64{"range counted": 5}[name]; out.rangeRows != wantRange {
				t.Errorf("range held %d unverifiedTokens rows, want %d", out.rangeRows, wantRange)
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
			if got := left("sessionTokens"); !bytes.Equal(got, []byte{0x30, 0x40, 0x50, 0x55}) {
				t.Errorf("sessions left %x, want 30 40 50 55", got)
			}
			if got := left("unverifiedTokens"); !bytes.Equal(got, []byte{0x30, 0x45, 0x55}) {
				t.Errorf("unverifiedTokens left %x, want 30 45 55", got)
			}
		})
	}
}
