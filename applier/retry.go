package applier

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"

	"prune-tokens/internal/backoff"
)

// RetryPolicy bounds how apply retries a batch after a transient error.
type RetryPolicy struct {
	Attempts int           // retries after the first failure; then apply stops (exit 3)
	Initial  time.Duration // first backoff
	Max      time.Duration // cap on one backoff
}

// DefaultRetry waits 0.25, 0.5, 1, 2, 4, 8, 15, 15 s (±20%): a batch gets
// about 46 s of retries, enough for a failover or a server restart, then apply
// stops with its checkpoint intact.
var DefaultRetry = RetryPolicy{Attempts: 8, Initial: 250 * time.Millisecond, Max: 15 * time.Second}

// budget is the time the retries of one batch wait in all, without jitter:
// how long apply keeps trying a database it cannot reach.
func (p RetryPolicy) budget() time.Duration {
	var total time.Duration
	for i := 1; i <= p.Attempts; i++ {
		total += backoff.Step(p.Initial, p.Max, i)
	}
	return total
}

// backoff returns the wait before retry number attempt (1-based).
func (p RetryPolicy) backoff(attempt int) time.Duration {
	return backoff.Jitter(backoff.Step(p.Initial, p.Max, attempt))
}

// MySQL and MariaDB error numbers worth retrying.
var transientCodes = map[uint16]string{
	1053: "server shutting down",
	1205: "lock wait timeout",
	1213: "deadlock",
	1317: "query interrupted",
	1927: "connection killed",
	2006: "server has gone away",
	2013: "lost connection during query",
}

// isTransient says whether err is worth retrying on a new connection: the
// connection or the server went away, or InnoDB chose this transaction as a
// lock victim. The batch was rolled back (or, if COMMIT was lost, committed);
// either way redoing it by key is harmless.
func isTransient(err error) bool {
	if err == nil {
		return false
	}
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		_, ok := transientCodes[me.Number]
		return ok
	}
	var ne net.Error
	switch {
	// sql.ErrConnDone: the pinned connection was closed after a bad-conn
	// error in an earlier statement, so the next one finds it gone: a cut
	// connection too.
	case errors.Is(err, driver.ErrBadConn), errors.Is(err, mysql.ErrInvalidConn), errors.Is(err, sql.ErrConnDone),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ETIMEDOUT),
		errors.As(err, &ne):
		return true
	case errors.Is(err, context.DeadlineExceeded):
		// A statement over its deadline: the driver closed the connection,
		// so the server rolls the transaction back.
		return true
	}
	return false
}

// refusedStatement says the server answered a statement with an error that
// is neither transient nor a missing privilege: it did not accept the
// statement as such.
func refusedStatement(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && !isTransient(err) && !privilegeErrors[me.Number]
}
