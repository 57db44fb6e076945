package mariadbtest

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// Replication credentials on private primaries: loopback only, thrown away
// with the server.
const (
	replUser = "repl"
	replPass = "repl-private-test"
)

// replicaTimeout bounds waiting for replication to start or catch up: the
// data sets of tests are small, so only a broken topology takes this long.
const replicaTimeout = 60 * time.Second

// serverIDs hands out server_id values: unique in a test process, so any
// primary and replicas started by it form a valid topology.
var serverIDs atomic.Int32

// StartPrimary starts a private server that can be replicated from: binary
// log in ROW format (as production FxA primaries run) and its own server_id.
func StartPrimary(t testing.TB) *Server {
	t.Helper()
	id := serverIDs.Add(1)
	p := StartWith(t, "--log-bin=mysql-bin", "--binlog-format=ROW",
		"--server-id="+strconv.Itoa(int(id)))
	db := p.Open(t, "")
	for _, q := range []string{
		"CREATE USER IF NOT EXISTS '" + replUser + "'@'127.0.0.1' IDENTIFIED BY '" + replPass + "'",
		"GRANT REPLICATION SLAVE ON *.* TO '" + replUser + "'@'127.0.0.1'",
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("primary on port %d: %s: %v", p.Port, q, err)
		}
	}
	return p
}

// Replica is a private server replicating from Primary through real
// MariaDB replication (binary log shipped over TCP, applied by the SQL
// thread), using GTIDs.
type Replica struct {
	*Server
	Primary *Server

	admin, primaryAdmin *sql.DB
}

// StartReplica starts a fresh server, points it at primary (which must come
// from StartPrimary) with CHANGE MASTER TO ... MASTER_USE_GTID=slave_pos,
// starts replication and returns once both replication threads run and it
// has applied everything the primary had written.
func StartReplica(t testing.TB, primary *Server) *Replica {
	t.Helper()
	id := serverIDs.Add(1)
	s := StartWith(t, "--server-id="+strconv.Itoa(int(id)), "--relay-log=relay-bin")
	r := &Replica{Server: s, Primary: primary, admin: s.Open(t, ""), primaryAdmin: primary.Open(t, "")}
	// MASTER_CONNECT_RETRY=1: after the primary or the replica is killed and
	// restarted, replication reconnects within a second, not a minute.
	change := fmt.Sprintf("CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%d, MASTER_USER='%s', MASTER_PASSWORD='%s', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1",
		primary.Port, replUser, replPass)
	r.exec(t, change)
	r.exec(t, "START SLAVE")
	r.WaitRunning(t)
	r.WaitCaughtUp(t)
	return r
}

func (r *Replica) exec(t testing.TB, q string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), replicaTimeout)
	defer cancel()
	if _, err := r.admin.ExecContext(ctx, q); err != nil {
		t.Fatalf("replica on port %d: %s: %v", r.Port, q, err)
	}
}

// StopSQLThread stops applying: the replica keeps receiving the primary's
// binary log, but falls behind (STOP SLAVE SQL_THREAD).
func (r *Replica) StopSQLThread(t testing.TB) { t.Helper(); r.exec(t, "STOP SLAVE SQL_THREAD") }

// StartSQLThread resumes applying (START SLAVE SQL_THREAD).
func (r *Replica) StartSQLThread(t testing.TB) { t.Helper(); r.exec(t, "START SLAVE SQL_THREAD") }

// StopReplication stops both threads (STOP SLAVE).
func (r *Replica) StopReplication(t testing.TB) { t.Helper(); r.exec(t, "STOP SLAVE") }

// StartReplication starts both threads (START SLAVE).
func (r *Replica) StartReplication(t testing.TB) { t.Helper(); r.exec(t, "START SLAVE") }

// SlaveStatus returns SHOW SLAVE STATUS as column name → value ("" for
// NULL), or nil when the server is not a replica.
func (r *Replica) SlaveStatus(t testing.TB) map[string]string {
	t.Helper()
	st, err := r.slaveStatus()
	if err != nil {
		t.Fatalf("replica on port %d: SHOW SLAVE STATUS: %v", r.Port, err)
	}
	return st
}

func (r *Replica) slaveStatus() (map[string]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rows, err := r.admin.QueryContext(ctx, "SHOW SLAVE STATUS")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	if !rows.Next() {
		return nil, rows.Err()
	}
	vals := make([]sql.NullString, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return nil, err
	}
	st := make(map[string]string, len(cols))
	for i, c := range cols {
		st[c] = vals[i].String
	}
	return st, rows.Err()
}

// WaitRunning waits until both replication threads run, and fails the test
// with the replica's last errors if they do not within a minute.
func (r *Replica) WaitRunning(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(replicaTimeout)
	var st map[string]string
	var err error
	for time.Now().Before(deadline) {
		st, err = r.slaveStatus()
		if err == nil && st["Slave_IO_Running"] == "Yes" && st["Slave_SQL_Running"] == "Yes" {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("replica on port %d: replication not running after %v (err %v; IO %q %q; SQL %q %q)", r.Port, replicaTimeout,
		err, st["Slave_IO_Running"], st["Last_IO_Error"], st["Slave_SQL_Running"], st["Last_SQL_Error"])
}

// WaitCaughtUp waits until the replica has applied every transaction the
// primary has written so far (MASTER_GTID_WAIT on the primary's
// gtid_binlog_pos).
func (r *Replica) WaitCaughtUp(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), replicaTimeout+10*time.Second)
	defer cancel()
	var pos string
	if err := r.primaryAdmin.QueryRowContext(ctx, "SELECT @@GLOBAL.gtid_binlog_pos").Scan(&pos); err != nil {
		t.Fatalf("primary on port %d: gtid_binlog_pos: %v", r.Primary.Port, err)
	}
	var res int
	if err := r.admin.QueryRowContext(ctx, "SELECT MASTER_GTID_WAIT(?, ?)", pos, replicaTimeout.Seconds()).Scan(&res); err != nil {
		t.Fatalf("replica on port %d: MASTER_GTID_WAIT(%q): %v", r.Port, pos, err)
	}
	if res != 0 {
		st, _ := r.slaveStatus()
		t.Fatalf("replica on port %d: not caught up with the primary's %q after %v (IO %q %q; SQL %q %q)", r.Port, pos, replicaTimeout,
			st["Slave_IO_Running"], st["Last_IO_Error"], st["Slave_SQL_Running"], st["Last_SQL_Error"])
	}
}
