package main

import (
	"bytes"
	"context"
	"database/sql"
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"

	"prune-tokens/internal/dbtest"
	"prune-tokens/internal/seed"
)

var testNow = time.Date(2026, 1, 15, 12, 0, 0, 0, time.UTC).UnixMilli()

// startSeeded runs a sandbox in this process with a small data set (the
// server runs under -race here) that still has three heavy accounts.
func startSeeded(t *testing.T) (*sandbox, *sql.DB, seed.Counts) {
	t.Helper()
	sb, err := startSandbox("127.0.0.1:0", io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sb.Close() })
	cfg, err := sandboxConfig(sb, "fxa")
	if err != nil {
		t.Fatal(err)
	}
	db, err := createDatabase(context.Background(), cfg, "fxa", false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	sc := seed.DefaultConfig(1, testNow)
	sc.Accounts, sc.HeavySessions = 300, 600
	n, err := populate(context.Background(), db, sc, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	return sb, db, n
}

// The sandbox holds the seeded FxA tables and answers, over the MySQL
// protocol, the statement shapes plan and apply rely on (see
// /work/helpers/gms-notes.md): a go-mysql-server upgrade that breaks one
// fails here rather than in the demo.
func TestSandboxAnswersThePortableSQL(t *testing.T) {
	_, db, seeded := startSeeded(t)
	ctx := context.Background()
	got, err := counts(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	for _, tbl := range tables {
		if got[tbl] != seeded[tbl] || got[tbl] == 0 {
			t.Errorf("%s: %d rows, seeded %d", tbl, got[tbl], seeded[tbl])
		}
	}

	var version string
	var serverID int64
	if err := db.QueryRow("SELECT VERSION(), @@server_id").Scan(&version, &serverID); err != nil || version != serverVersion {
		t.Errorf("VERSION() = %q, %v; want %q", version, err, serverVersion)
	}

	// A session with a device, under a known account, to aim the queries at.
	var uid, tok []byte
	if err := db.QueryRow(`SELECT s.uid, s.tokenId FROM sessionTokens s JOIN devices d
		ON d.uid = s.uid AND d.sessionTokenId = s.tokenId ORDER BY s.tokenId LIMIT 1`).Scan(&uid, &tok); err != nil {
		t.Fatal(err)
	}
	// The pool has one connection (see openPing): conn below takes it.
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	one := func(q string, args ...any) int64 {
		t.Helper()
		var n int64
		if err := conn.QueryRowContext(ctx, q, args...).Scan(&n); err != nil {
			t.Errorf("%s: %v", q, err)
		}
		return n
	}
	if n := one(`SELECT COUNT(*) FROM (SELECT uid FROM sessionTokens GROUP BY uid HAVING COUNT(*) > ?
		ORDER BY COUNT(*) DESC, uid LIMIT 100) x`, 500); n != 3 {
		t.Errorf("GROUP BY HAVING: %d accounts over 500 sessions, want the 3 heavy ones", n)
	}
	if n := one(`SELECT COUNT(*) FROM sessionTokens s WHERE s.tokenId = ? AND NOT EXISTS
		(SELECT 1 FROM devices d WHERE d.uid = s.uid AND d.sessionTokenId = s.tokenId)`, tok); n != 0 {
		t.Error("NOT EXISTS: a session with a device counted as device-less")
	}
	// Both with placeholders: the literal UNHEX() form of this crashes the
	// connection (gms-notes.md).
	if n := one("SELECT COUNT(*) FROM devices WHERE uid = ? AND sessionTokenId = ?", uid, tok); n != 1 {
		t.Errorf("devices by (uid, sessionTokenId): %d rows", n)
	}
	if n := one(`SELECT COUNT(*) FROM (SELECT tokenId FROM sessionTokens WHERE createdAt < ? AND (createdAt, tokenId) > (?, ?)
		ORDER BY createdAt, tokenId LIMIT 10) x`, testNow, 0, tok); n != 10 {
		t.Errorf("row-comparison keyset page: %d rows, want 10", n)
	}

	// Locks and transactions as apply uses them.
	var got1 int64
	if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK('fxa-auth-server.prune-lock', 1)").Scan(&got1); err != nil || got1 != 1 {
		t.Errorf("GET_LOCK = %d, %v", got1, err)
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec("SELECT tokenId FROM sessionTokens WHERE tokenId IN (?) FOR UPDATE", tok); err != nil {
		t.Errorf("FOR UPDATE: %v", err)
	}
	for _, q := range []string{
		"DELETE FROM devices WHERE (uid = ? AND sessionTokenId = ?)",
		"DELETE FROM sessionTokens WHERE tokenId IN (?) AND uid = ?",
	} {
		args := []any{uid, tok}
		if strings.HasPrefix(q, "DELETE FROM sessionTokens") {
			args = []any{tok, uid}
		}
		if _, err := tx.Exec(q, args...); err != nil {
			t.Errorf("%s: %v", q, err)
		}
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if n := one("SELECT COUNT(*) FROM sessionTokens WHERE tokenId = ?", tok); n != 1 {
		t.Error("ROLLBACK did not undo the delete")
	}
	if _, err := conn.ExecContext(ctx, "SELECT RELEASE_LOCK('fxa-auth-server.prune-lock')"); err != nil {
		t.Error(err)
	}
}

func TestSchemaWithoutSecondaryIndexes(t *testing.T) {
	full, lean := schema(true), schema(false)
	if len(full) != 9 || len(lean) != 9 {
		t.Fatalf("%d and %d statements, want 9", len(full), len(lean))
	}
	for i, s := range lean {
		if strings.Contains(s, "INDEX") || !strings.Contains(s, "PRIMARY KEY") || strings.Contains(s, ",\n)") {
			t.Errorf("lean statement %d:\n%s\n(from)\n%s", i, s, full[i])
		}
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--listen", "0.0.0.0:0"},
		{"--listen", "example.com:3307"},
		{"--listen", "nonsense"},
		{"--sessions", "-5"},
		{"--now", "yesterday"},
		{"--database", "a`b"},
		{"--nosuchflag"},
		{"demo", "--bin", "/nonexistent/prune-tokens"},
	} {
		var out, errb bytes.Buffer
		code := run(context.Background(), append([]string{"prune-tokens-sandbox"}, args...), &out, &errb)
		msg := errb.String()
		if code != 2 || strings.Count(msg, "\n") != 1 || !strings.HasPrefix(msg, "prune-tokens-sandbox: ") {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 and one line", args, code, msg)
		}
	}
}

// go-mysql-server (and its gRPC, wazero, ... dependencies) must stay out of
// the production binary.
func TestPruneTokensDoesNotLinkGoMySQLServer(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", "./cmd/prune-tokens")
	cmd.Dir = dbtest.RepoRoot()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	if strings.Contains(string(out), "dolthub") {
		t.Error("cmd/prune-tokens depends on go-mysql-server")
	}
}
