// Package dbtest gives integration tests a fresh FxA database on the real
// MariaDB server named by PRUNE_TOKENS_TEST_DSN, built from internal/schema/schema.sql
// and dropped when the test ends.
package dbtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"prune-tokens/internal/schema"
)

// DefaultDSN is the server the tests use when PRUNE_TOKENS_TEST_DSN is unset.
const DefaultDSN = "root@tcp(127.0.0.1:3306)/"

// DB is one throw-away database.
type DB struct {
	Name string  // database name
	DSN  string  // go-sql-driver DSN that selects the database
	SQL  *sql.DB // connection pool on DSN
}

// ServerDSN returns the configured server DSN (no database selected).
func ServerDSN() string {
	if v := os.Getenv("PRUNE_TOKENS_TEST_DSN"); v != "" {
		return v
	}
	return DefaultDSN
}

// RepoRoot is the module root, found from this file's location so that tests
// in any package can reach testdata/.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", "..", ".."))
}

// SchemaSQL returns the statements of internal/schema/schema.sql, one per element.
func SchemaSQL() ([]string, error) {
	return schema.SchemaStatements(), nil
}

// Unavailable ends a test that cannot run its check on this machine (no
// server, no chattr, no tmpfs mount, ...): outside CI a developer may skip
// it, but with CI set it fails, so CI never passes a check it did not run.
// .ci/run arranges what the tests need.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") != "" {
		t.Fatalf("%s (CI requires it)", msg)
	}
	t.Skip(msg)
}

func unreachable(t testing.TB, err error) {
	t.Helper()
	Unavailable(t, "MariaDB at %s not reachable; set PRUNE_TOKENS_TEST_DSN: %v", Redacted(ServerDSN()), err)
}

// Redacted hides the password of a DSN for messages.
func Redacted(dsn string) string {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return "(unparsable DSN)"
	}
	if cfg.Passwd != "" {
		cfg.Passwd = "xxxxx"
	}
	return cfg.FormatDSN()
}

// New creates a database with the FxA schema and drops it at cleanup.
func New(t testing.TB) *DB {
	t.Helper()
	return NewNamed(t, "")
}

// NewNamed is New with a name prefix, to find a test's database when debugging.
func NewNamed(t testing.TB, prefix string) *DB {
	t.Helper()
	serverDSN := ServerDSN()
	cfg, err := mysql.ParseDSN(serverDSN)
	if err != nil {
		t.Fatalf("PRUNE_TOKENS_TEST_DSN: %v", err)
	}
	cfg.Timeout = 5 * time.Second
	cfg.DBName = ""
	admin, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer admin.Close()
	if err := admin.Ping(); err != nil {
		unreachable(t, err)
	}

	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	if prefix == "" {
		prefix = "pt_test"
	}
	name := prefix + "_" + hex.EncodeToString(rnd[:])
	if _, err := admin.Exec("CREATE DATABASE `" + name + "`"); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		a, err := sql.Open("mysql", cfg.FormatDSN())
		if err != nil {
			t.Errorf("drop database %s: %v", name, err)
			return
		}
		defer a.Close()
		if _, err := a.Exec("DROP DATABASE IF EXISTS `" + name + "`"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})

	cfg.DBName = name
	cfg.InterpolateParams = true
	dsn := cfg.FormatDSN()
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	t.Cleanup(func() { db.Close() })
	stmts, err := SchemaSQL()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("schema: %v\n%s", err, s)
		}
	}
	return &DB{Name: name, DSN: dsn, SQL: db}
}

// Checksums returns CHECKSUM TABLE for each of the nine tables, to prove a
// command left the data untouched.
func (d *DB) Checksums(t testing.TB) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for _, tbl := range Tables {
		var name string
		var sum sql.NullInt64
		if err := d.SQL.QueryRow("CHECKSUM TABLE `"+tbl+"`").Scan(&name, &sum); err != nil {
			t.Fatalf("checksum %s: %v", tbl, err)
		}
		out[tbl] = sum.Int64
	}
	return out
}

// LockTableWrite holds a WRITE lock on table from a connection of its own
// until the test ends, so a statement of the code under test waits on the
// server.
func (d *DB) LockTableWrite(t testing.TB, table string) {
	t.Helper()
	conn, err := d.SQL.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(context.Background(), "LOCK TABLES `"+table+"` WRITE"); err != nil {
		conn.Close()
		t.Fatalf("lock %s: %v", table, err)
	}
	t.Cleanup(func() {
		conn.ExecContext(context.Background(), "UNLOCK TABLES")
		conn.Close()
	})
}

// Count returns the number of rows in a table.
func (d *DB) Count(t testing.TB, table string) int {
	t.Helper()
	var n int
	if err := d.SQL.QueryRow("SELECT COUNT(*) FROM `" + table + "`").Scan(&n); err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return n
}

// Tables are the nine FxA tables of internal/schema/schema.sql.
var Tables = []string{
	"sessionTokens", "unverifiedTokens", "devices",
	"accountResetTokens", "passwordForgotTokens", "passwordChangeTokens",
	"keyFetchTokens", "unblockCodes", "signinCodes",
}
