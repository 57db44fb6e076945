package applier

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

func TestIsTransient(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{&mysql.MySQLError{Number: 1205, Message: "Lock wait timeout exceeded"}, true},
		{fmt.Errorf("delete: %w", &mysql.MySQLError{Number: 1213}), true},
		{&mysql.MySQLError{Number: 1053}, true},
		{&mysql.MySQLError{Number: 1927}, true},
		{&mysql.MySQLError{Number: 1146, Message: "Table doesn't exist"}, false},
		{&mysql.MySQLError{Number: 1142, Message: "DELETE command denied"}, false},
		{driver.ErrBadConn, true},
		{fmt.Errorf("take named lock x: %w", sql.ErrConnDone), true},
		{fmt.Errorf("commit: %w", mysql.ErrInvalidConn), true},
		{&net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, true},
		{fmt.Errorf("x: %w", syscall.ECONNRESET), true},
		{context.DeadlineExceeded, true},
		{errors.New("checkpoint: disk on fire"), false},
		{context.Canceled, false},
		{nil, false},
	} {
		if got := isTransient(c.err); got != c.want {
			t.Errorf("isTransient(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

// TestRefusedStatement: only the server declining a statement as such
// counts as a refusal, which apply works around (the portable batch path)
// or goes on without (a session setting the server does not have). A
// statement cut, timed out or interrupted is not one: a setting it carried
// may not be in force on a connection that is still alive.
func TestRefusedStatement(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{&mysql.MySQLError{Number: 1193, Message: "Unknown system variable 'in_predicate_conversion_threshold'"}, true},
		{&mysql.MySQLError{Number: 1064, Message: "You have an error in your SQL syntax"}, true},
		{&mysql.MySQLError{Number: 1317, Message: "Query execution was interrupted"}, false},
		{&mysql.MySQLError{Number: 1927, Message: "Connection was killed"}, false},
		{&mysql.MySQLError{Number: 1142, Message: "DELETE command denied"}, false},
		{driver.ErrBadConn, false},
		{sql.ErrConnDone, false},
		{context.DeadlineExceeded, false},
		{nil, false},
	} {
		if got := refusedStatement(c.err); got != c.want {
			t.Errorf("refusedStatement(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

func TestBackoffIsBounded(t *testing.T) {
	p := DefaultRetry
	var total time.Duration
	for i := 1; i <= p.Attempts; i++ {
		d := p.backoff(i)
		if d < p.Initial*8/10 || d > p.Max*12/10 {
			t.Errorf("backoff(%d) = %s, outside [%s, %s]", i, d, p.Initial*8/10, p.Max*12/10)
		}
		total += d
	}
	if total > time.Minute {
		t.Errorf("all retries take %s; apply must give up within about a minute", total)
	}
}
