// Package faults_test runs the real prune-tokens binary against faults,
// hostile input and restricted accounts. The quick tests run in make test;
// the slow ones (private servers killed mid-apply, cut connections, full
// disks) carry the faults build tag and run in make test-faults.
package faults_test

import (
	"bytes"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"os"
	"regexp"
	"strconv"
	"testing"

	"github.com/go-sql-driver/mysql"
	"github.com/parquet-go/parquet-go"

	"prune-tokens/internal/test/appliertest"
	"prune-tokens/internal/test/clitest"
	"prune-tokens/internal/test/dbtest"
	"prune-tokens/internal/test/mariadbtest"
	"prune-tokens/manifest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	clitest.Cleanup()
	os.Exit(code)
}

var resumeRE = regexp.MustCompile(`resuming at row (\d+) of (\d+)`)

// resumedAt is the row a rerun said it resumes at, or -1.
func resumedAt(p *clitest.Proc) int64 {
	m := resumeRE.FindStringSubmatch(p.Stdout.String())
	if m == nil {
		return -1
	}
	n, _ := strconv.ParseInt(m[1], 10, 64)
	return n
}

// withAddr returns dsn pointed at another host:port.
func withAddr(t *testing.T, dsn, addr string) string {
	t.Helper()
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Addr = addr
	return cfg.FormatDSN()
}

// withUser returns dsn with another user and password.
func withUser(t *testing.T, dsn, user, pass string) string {
	t.Helper()
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	cfg.User, cfg.Passwd = user, pass
	return cfg.FormatDSN()
}

// privateDB creates an FxA database on a private server, as a dbtest.DB so
// the shared fixtures work on it.
func privateDB(t *testing.T, srv *mariadbtest.Server, name string) *dbtest.DB {
	t.Helper()
	dsn := srv.CreateFxA(t, name)
	return &dbtest.DB{Name: name, DSN: dsn, SQL: srv.Open(t, name)}
}

// listedGone counts the manifest rows whose own row is gone from its table.
func listedGone(t *testing.T, f *appliertest.Fixture) int {
	t.Helper()
	keys := map[string]map[string]bool{}
	n := 0
	for _, r := range f.Rows {
		if keys[r.Table] == nil {
			keys[r.Table] = appliertest.Keys(t, f.DB.SQL, r.Table)
		}
		if !keys[r.Table][hex.EncodeToString(r.Key())] {
			n++
		}
	}
	return n
}

func sameSums(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// applyArgs is apply on a manifest with a named checkpoint and no wait.
func applyArgs(dsn, path, checkpoint string, extra ...string) []string {
	return append([]string{"apply", "--dsn", dsn, "--manifest", path, "--approve", appliertest.Approval(path), "--checkpoint", checkpoint, "--wait", "0"}, extra...)
}

// exec as root against a database: GRANTs and users.
func mustExec(t *testing.T, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// fileRow is the manifest's on-disk row, written here by hand the way a
// hostile or buggy third-party tool would.
type fileRow struct {
	Stage     string `parquet:"stage"`
	TableName string `parquet:"table_name"`
	ID        []byte `parquet:"id"`
	UID       []byte `parquet:"uid"`
	CreatedAt int64  `parquet:"created_at"`
}

func toFileRows(rows []manifest.Row) []fileRow {
	out := make([]fileRow, len(rows))
	for i, r := range rows {
		out[i] = fileRow{r.Stage, r.Table, bytes.Clone(r.ID), bytes.Clone(r.UID), r.CreatedAt}
	}
	return out
}

// readKV returns a Parquet file's key/value metadata.
func readKV(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	pf, err := parquet.OpenFile(f, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	kv := map[string]string{}
	for _, e := range pf.Metadata().KeyValueMetadata {
		kv[e.Key] = e.Value
	}
	return kv
}

// honestKV rewrites the row-derived metadata (digest, row count, counts,
// stats) to describe rows truthfully, from the digest's documented
// definition, so that only the rows' own faults are left for apply to find.
func honestKV(base map[string]string, rows []manifest.Row) map[string]string {
	kv := map[string]string{}
	for k, v := range base {
		kv[k] = v
	}
	h := sha256.New()
	type stat struct {
		Stage    string `json:"stage"`
		Table    string `json:"table"`
		Rows     int64  `json:"rows"`
		Accounts int64  `json:"accounts"`
		Oldest   int64  `json:"oldest_created_at"`
		Newest   int64  `json:"newest_created_at"`
	}
	var stats []*stat
	counts := map[string]int64{}
	for _, r := range rows {
		var b []byte
		for _, f := range [][]byte{[]byte(r.Stage), []byte(r.Table), r.ID, r.UID} {
			b = binary.AppendUvarint(b, uint64(len(f)))
			b = append(b, f...)
		}
		h.Write(binary.BigEndian.AppendUint64(b, uint64(r.CreatedAt)))
		if len(stats) == 0 || stats[len(stats)-1].Stage != r.Stage || stats[len(stats)-1].Table != r.Table {
			stats = append(stats, &stat{Stage: r.Stage, Table: r.Table, Oldest: r.CreatedAt, Newest: r.CreatedAt})
		}
		s := stats[len(stats)-1]
		s.Rows++
		s.Accounts = s.Rows
		s.Oldest, s.Newest = min(s.Oldest, r.CreatedAt), max(s.Newest, r.CreatedAt)
		counts[r.Stage+"/"+r.Table]++
	}
	sj, _ := json.Marshal(stats)
	cj, _ := json.Marshal(counts)
	kv["prune-tokens.rows_sha256"] = hex.EncodeToString(h.Sum(nil))
	kv["prune-tokens.row_count"] = strconv.Itoa(len(rows))
	kv["prune-tokens.stats"] = string(sj)
	kv["prune-tokens.counts"] = string(cj)
	return kv
}

// writeParquet writes rows of any struct type with the given metadata.
func writeParquet[T any](t *testing.T, path string, rows []T, kv map[string]string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := parquet.NewGenericWriter[T](f)
	if _, err := w.Write(rows); err != nil {
		t.Fatal(err)
	}
	for k, v := range kv {
		w.SetKeyValueMetadata(k, v)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}
