package applier

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"prune-tokens/internal/test/dbtest"
	"prune-tokens/manifest"
)

// TestStatementPlans EXPLAINs every statement apply sends, as the SQL
// builders produce it, on MariaDB with a realistic amount of data, at
// batch sizes from 1 to the maximum: each must find its rows through the
// key list on the table's primary key (devices: its unique (uid,
// sessionTokenId) index), never scan a table, and the plan-match row list
// must not reach the range optimizer (which then spends about a second per
// statement on it): the target's possible keys are the key-list index only.
func TestStatementPlans(t *testing.T) {
	db := dbtest.New(t)
	// 100,000 rows a table (MariaDB's Sequence engine makes them in
	// seconds): with only a few times a batch's rows, a full scan is the
	// optimizer's right answer, and the test would prove nothing about
	// production's tables of millions.
	uid := "UNHEX(LEFT(SHA2(seq % 30000, 256), 32))"
	for _, q := range []string{
		"INSERT INTO sessionTokens (tokenId, tokenData, uid, createdAt) SELECT UNHEX(SHA2(seq, 256)), UNHEX(SHA2(seq, 256)), " + uid + ", seq FROM seq_1_to_100000",
		"INSERT INTO unverifiedTokens (tokenId, tokenVerificationId, uid, tokenVerificationCodeHash) SELECT UNHEX(SHA2(seq, 256)), UNHEX(LEFT(SHA2(seq, 256), 32)), " + uid + ", UNHEX(SHA2(seq + 1, 256)) FROM seq_1_to_100000",
		"INSERT INTO devices (uid, id, sessionTokenId, createdAt) SELECT " + uid + ", UNHEX(LEFT(SHA2(seq, 256), 32)), UNHEX(SHA2(seq, 256)), seq FROM seq_1_to_100000",
		"INSERT INTO accountResetTokens (tokenId, tokenData, uid, createdAt) SELECT UNHEX(SHA2(seq, 256)), UNHEX(SHA2(seq, 256)), UNHEX(LEFT(SHA2(seq, 256), 32)), seq FROM seq_1_to_100000",
		"INSERT INTO passwordForgotTokens (tokenId, tokenData, uid, passCode, createdAt, tries) SELECT UNHEX(SHA2(seq, 256)), UNHEX(SHA2(seq, 256)), UNHEX(LEFT(SHA2(seq, 256), 32)), UNHEX(LEFT(SHA2(seq, 256), 32)), seq, 0 FROM seq_1_to_100000",
		"INSERT INTO passwordChangeTokens (tokenId, tokenData, uid, createdAt) SELECT UNHEX(SHA2(seq, 256)), UNHEX(SHA2(seq, 256)), UNHEX(LEFT(SHA2(seq, 256), 32)), seq FROM seq_1_to_100000",
		"INSERT INTO unblockCodes (uid, unblockCodeHash, createdAt) SELECT " + uid + ", UNHEX(SHA2(seq, 256)), seq FROM seq_1_to_100000",
		"INSERT INTO signinCodes (hash, uid, createdAt) SELECT UNHEX(SHA2(seq, 256)), " + uid + ", seq FROM seq_1_to_100000",
	} {
		if _, err := db.SQL.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	for _, table := range dbtest.Tables {
		if _, err := db.SQL.Exec("ANALYZE TABLE " + table); err != nil {
			t.Fatal(err)
		}
	}
	// EXPLAIN on a connection set up as apply sets up its own.
	conn, err := db.SQL.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, q := range sessionSettings {
		if _, err := conn.ExecContext(context.Background(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	// The key-list indexes; a possible key outside them (createdAt, uid)
	// means the plan-match list reached the range optimizer.
	keyIndexes := map[string]bool{"PRIMARY": true, "UQ_devices_sessionTokenId": true}
	for _, n := range []int{1, 100, 1000, MaxBatchSize} {
		rows := make([]manifest.Row, n)
		for i := range rows {
			id := sha256.Sum256([]byte(strconv.Itoa(i + 1)))
			uid := sha256.Sum256([]byte(strconv.Itoa((i + 1) % 30000)))
			rows[i] = manifest.Row{ID: id[:], UID: uid[:16], CreatedAt: int64(i + 1)}
		}
		for _, sec := range manifest.Sections() {
			for i := range rows {
				rows[i].Stage, rows[i].Table = sec.Stage, sec.Table
			}
			stmts, err := statementsFor(sec, rows)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range stmts {
				if !strings.Contains(s.query, " FROM ") {
					continue // reads no table (the batch's counts)
				}
				plan := explain(t, conn, s)
				if n == 1 && plan[0]["Extra"] == "Impossible WHERE noticed after reading const tables" {
					// The optimizer read the one listed row (and its
					// device) by key and found it ineligible.
					continue
				}
				target := plan[0]
				for _, r := range plan {
					if !strings.HasPrefix(r["table"], "<") {
						target = r // the first real table
						break
					}
				}
				table := target["table"]
				name := fmt.Sprintf("%s, %d rows: %.60s...", sec, n, s.query)
				if target["type"] != "range" && target["type"] != "eq_ref" && !(n == 1 && target["type"] == "const") {
					t.Errorf("%s: %s access is %q, want a range of the key list", name, table, target["type"])
				}
				if !keyIndexes[target["key"]] || (table != "devices" && target["key"] != "PRIMARY") {
					t.Errorf("%s: %s uses key %q, want its primary key (devices: or its unique session index)", name, table, target["key"])
				}
				if strings.Contains(s.query, "createdAt) IN (") {
					for _, k := range strings.Split(target["possible_keys"], ",") {
						if !keyIndexes[k] {
							t.Errorf("%s: possible key %q: the plan-match list reached the range optimizer", name, k)
						}
					}
				}
				for _, r := range plan {
					// <derivedN>/<subqueryN> are the key list itself: MariaDB
					// turns an IN list of 1,000 values or more in a SELECT
					// into a table of them, then looks each key up.
					if (r["type"] == "ALL" || r["type"] == "index") && !strings.HasPrefix(r["table"], "<") {
						t.Errorf("%s: scans %s (%s)", name, r["table"], r["type"])
					}
				}
			}
		}
	}
}

// explain returns EXPLAIN's rows as column maps.
func explain(t *testing.T, conn *sql.Conn, s statement) []map[string]string {
	t.Helper()
	rows, err := conn.QueryContext(context.Background(), "EXPLAIN "+s.query, s.args...)
	if err != nil {
		t.Fatalf("EXPLAIN %.80s: %v", s.query, err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out []map[string]string
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		m := map[string]string{}
		for i, c := range cols {
			m[c] = vals[i].String
		}
		out = append(out, m)
	}
	if len(out) == 0 {
		t.Fatalf("EXPLAIN %.80s: no rows", s.query)
	}
	return out
}
