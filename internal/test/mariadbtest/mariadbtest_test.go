package mariadbtest

import (
	"context"
	"testing"
	"time"
)

// TestKillRestart: a committed row survives SIGKILL, an uncommitted one does
// not, and the server comes back on the same port.
func TestKillRestart(t *testing.T) {
	s := Start(t)
	dsn := s.CreateFxA(t, "fxa")
	if dsn == "" || s.Port == 0 {
		t.Fatal("no DSN or port")
	}
	db := s.Open(t, "fxa")
	if _, err := db.Exec("INSERT INTO signinCodes (hash, uid, createdAt) VALUES (REPEAT('a', 32), REPEAT('u', 16), 1)"); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec("INSERT INTO signinCodes (hash, uid, createdAt) VALUES (REPEAT('b', 32), REPEAT('u', 16), 2)"); err != nil {
		t.Fatal(err)
	}
	port := s.Port
	s.Kill(t)
	if s.Running() {
		t.Fatal("still running after Kill")
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.PingContext(pctx); err == nil {
		t.Fatal("ping succeeded with the server killed")
	}
	_ = tx.Rollback()

	s.Restart(t)
	if s.Port != port || !s.Running() {
		t.Fatalf("port %d running %v after restart, want %d true", s.Port, s.Running(), port)
	}
	var n int
	var hashes string
	if err := db.QueryRow("SELECT COUNT(*), GROUP_CONCAT(LEFT(hash, 1)) FROM signinCodes").Scan(&n, &hashes); err != nil {
		t.Fatal(err)
	}
	if n != 1 || hashes != "a" {
		t.Fatalf("after crash: %d rows (%s), want only the committed one", n, hashes)
	}
}

func TestTwoServersAreIndependent(t *testing.T) {
	a, b := Start(t), Start(t)
	if a.Port == b.Port || a.Dir == b.Dir {
		t.Fatalf("servers share port %d or dir %s", a.Port, a.Dir)
	}
	a.CreateFxA(t, "fxa")
	b.CreateFxA(t, "fxa") // would fail if b were a
	a.Kill(t)
	if err := b.Open(t, "fxa").Ping(); err != nil {
		t.Fatalf("b died with a: %v", err)
	}
}

func TestFreezeThaw(t *testing.T) {
	s := Start(t)
	db := s.Open(t, "")
	s.Freeze(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err == nil {
		t.Fatal("a frozen server answered")
	}
	s.Thaw(t)
	if err := db.Ping(); err != nil {
		t.Fatalf("thawed server: %v", err)
	}
	s.Freeze(t)
	s.Kill(t) // SIGKILL ends a stopped process too
	if s.Running() {
		t.Fatal("frozen server survived Kill")
	}
}
