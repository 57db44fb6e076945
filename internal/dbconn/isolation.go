package dbconn

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/go-sql-driver/mysql"
)

// IsolationLevel reads the isolation level of q's session, as the server
// spells it ("REPEATABLE-READ"). MariaDB and MySQL 5.7 name the variable
// tx_isolation, MySQL 8 only transaction_isolation.
func IsolationLevel(ctx context.Context, q interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}) (string, error) {
	var level string
	err := q.QueryRowContext(ctx, "SELECT @@SESSION.tx_isolation").Scan(&level)
	var me *mysql.MySQLError
	if errors.As(err, &me) && me.Number == errUnknownSystemVariable {
		err = q.QueryRowContext(ctx, "SELECT @@SESSION.transaction_isolation").Scan(&level)
	}
	if err != nil {
		return "", fmt.Errorf("read the session's isolation level: %w", err)
	}
	return strings.ToUpper(strings.ReplaceAll(strings.TrimSpace(level), " ", "-")), nil
}

const errUnknownSystemVariable = 1193 // ER_UNKNOWN_SYSTEM_VARIABLE

// Repeatable says a session at level reads one snapshot per transaction
// and takes gap locks: REPEATABLE READ or SERIALIZABLE.
func Repeatable(level string) bool {
	return level == "REPEATABLE-READ" || level == "SERIALIZABLE"
}
