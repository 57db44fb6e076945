// Package sandboxtest gives a test a fresh FxA database on an in-process
// sandbox (go-mysql-server), shaped like dbtest.DB, so that tests written for
// MariaDB can send their real statements to the sandbox too.
package sandboxtest

import (
	"context"
	"io"
	"testing"

	"prune-tokens/internal/sandbox"
	"prune-tokens/internal/test/dbtest"
)

// New starts a sandbox for the test (stopped at cleanup) with database fxa
// and the FxA schema as prune-tokens-sandbox creates it (primary keys only).
// Its pool has one connection: go-mysql-server does not isolate concurrent
// writers, so a test must not hold a connection while another client works.
func New(t testing.TB) *dbtest.DB {
	t.Helper()
	sb, err := sandbox.Start("127.0.0.1:0", io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sb.Close() })
	cfg, err := sb.Config("fxa")
	if err != nil {
		t.Fatal(err)
	}
	db, err := sandbox.CreateDatabase(context.Background(), cfg, "fxa", false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return &dbtest.DB{Name: "fxa", DSN: sb.DSN("fxa"), SQL: db}
}
