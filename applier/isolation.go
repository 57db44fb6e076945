package applier

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"

	"prune-tokens/internal/dbconn"
)

// sessionSettings are set on apply's connection before its first batch; a
// server that refuses one (no such variable, or the sandbox) goes on
// without it, but not without the isolation level (checkIsolation).
var sessionSettings = []string{
	// The guards rely on REPEATABLE READ's gap locks: a device cannot
	// appear for a session between its check and its delete, a row cannot
	// enter a range apply counted. A server whose default is READ
	// COMMITTED would not take them.
	"SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
	// MariaDB turns an IN list of in_predicate_conversion_threshold (1,000)
	// values or more into a subquery over a table of the values, which
	// slows the guarded DELETE of a large batch (docs/benchmarks.md); the
	// key lists are primary-key lookups either way. MySQL has no such
	// conversion and no such variable.
	"SET SESSION in_predicate_conversion_threshold = 0",
}

// applySessionSettings sets sessionSettings on conn, then reads the
// isolation level back: the guards hold only where it is what they need.
func applySessionSettings(ctx context.Context, conn *sql.Conn) error {
	for _, q := range sessionSettings {
		if _, err := conn.ExecContext(ctx, q); err != nil && !refusedStatement(err) {
			// Not a refusal but a cut, stalled or interrupted statement:
			// the setting may not be in force on a connection that may
			// still be alive, so it must not run batches.
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	return checkIsolation(ctx, conn)
}

// isolationError says the session runs at a level under which the guards
// would not hold; it is not transient, so apply stops rather than retries.
type isolationError struct{ level string }

func (e *isolationError) Error() string {
	return fmt.Sprintf("the server keeps apply's session at isolation level %s, and its guards need REPEATABLE READ "+
		"(SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ did not take): refusing to delete", e.level)
}

// checkIsolation fails unless conn's session is at a level under which the
// guards hold.
func checkIsolation(ctx context.Context, conn *sql.Conn) error {
	level, err := dbconn.IsolationLevel(ctx, conn)
	if err != nil {
		return err
	}
	if !dbconn.Repeatable(level) {
		return &isolationError{level}
	}
	return nil
}

// preflightIsolation opens a session as apply's batches will and checks
// its isolation level before the first batch, so a server that will not
// give it is refused at the start (exit 2), not at the first batch. Only
// that refusal counts here: a cut or stalled statement is the batches'
// connection's to retry, and it checks the level again.
func preflightIsolation(ctx context.Context, db *sql.DB) error {
	var ie *isolationError
	if err := sessionIsolation(ctx, db); errors.As(err, &ie) {
		return err
	}
	return nil
}

func sessionIsolation(ctx context.Context, db *sql.DB) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer func() {
		// Its session settings are apply's, not the pool's defaults.
		_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		conn.Close()
	}()
	return applySessionSettings(ctx, conn)
}
