package applier

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// LockName is the MySQL named lock FxA's own pruning procedures take. Holding
// it keeps apply and the service's pruning from ever deleting at once.
const LockName = "fxa-auth-server.prune-lock"

// lockPoll is how long one GET_LOCK waits server-side before apply checks
// its own context and deadline again.
const lockPoll = 3 * time.Second

// errLockBusy says the named lock stayed taken for the whole LockWait.
var errLockBusy = errors.New("the named lock is held by another session")

// getLock takes the named lock on conn, waiting up to wait while another
// session (the service's pruning) holds it. A named lock belongs to the
// connection: it ends with it, which is why apply pins one connection and
// re-takes the lock whenever it has to replace it.
func getLock(ctx context.Context, conn *sql.Conn, name string, wait time.Duration, waiting func(holder int64)) error {
	deadline := time.Now().Add(wait)
	told := false
	for {
		var got sql.NullInt64
		qctx, cancel := context.WithTimeout(ctx, lockPoll+statementSlack)
		err := conn.QueryRowContext(qctx, "SELECT GET_LOCK(?, ?)", name, int(lockPoll/time.Second)).Scan(&got)
		cancel()
		if err != nil {
			return fmt.Errorf("take named lock %s: %w", name, err)
		}
		if got.Valid && got.Int64 == 1 {
			return nil
		}
		if !got.Valid {
			return fmt.Errorf("take named lock %s: GET_LOCK returned NULL", name)
		}
		if !told && waiting != nil {
			var holder sql.NullInt64
			qctx, cancel := context.WithTimeout(ctx, statementSlack)
			_ = conn.QueryRowContext(qctx, "SELECT IS_USED_LOCK(?)", name).Scan(&holder)
			cancel()
			waiting(holder.Int64)
			told = true
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !time.Now().Before(deadline) {
			return fmt.Errorf("%s: %w for longer than %s", name, errLockBusy, wait)
		}
	}
}

// releaseLock gives the named lock back; losing the connection would too.
func releaseLock(ctx context.Context, conn *sql.Conn, name string) error {
	qctx, cancel := context.WithTimeout(ctx, statementSlack)
	defer cancel()
	var r sql.NullInt64
	if err := conn.QueryRowContext(qctx, "SELECT RELEASE_LOCK(?)", name).Scan(&r); err != nil {
		return fmt.Errorf("release named lock %s: %w", name, err)
	}
	return nil
}
