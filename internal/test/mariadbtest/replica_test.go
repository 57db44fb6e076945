package mariadbtest

import (
	"database/sql"
	"testing"
	"time"
)

// TestReplication: rows written on the primary arrive on the replica through
// real replication; with the SQL thread stopped they do not, and after it
// starts again they do. A killed replica restarts and resumes replicating.
func TestReplication(t *testing.T) {
	p := StartPrimary(t)
	r := StartReplica(t, p)
	pdb, rdb := p.Open(t, ""), r.Open(t, "")

	var logBin, pid, rid int
	if err := pdb.QueryRow("SELECT @@log_bin, @@server_id").Scan(&logBin, &pid); err != nil {
		t.Fatal(err)
	}
	if err := rdb.QueryRow("SELECT @@server_id").Scan(&rid); err != nil {
		t.Fatal(err)
	}
	if logBin != 1 || pid == rid {
		t.Fatalf("primary log_bin=%d server_id=%d, replica server_id=%d: want a binary log and distinct ids", logBin, pid, rid)
	}

	mustExec(t, pdb, "CREATE DATABASE rt")
	mustExec(t, pdb, "CREATE TABLE rt.t (id INT PRIMARY KEY)")
	mustExec(t, pdb, "INSERT INTO rt.t VALUES (1)")
	r.WaitCaughtUp(t)
	if n := count(t, rdb, "rt.t"); n != 1 {
		t.Fatalf("replica has %d rows, want the primary's 1", n)
	}

	r.StopSQLThread(t)
	if st := r.SlaveStatus(t); st["Slave_SQL_Running"] != "No" || st["Slave_IO_Running"] != "Yes" {
		t.Fatalf("after STOP SLAVE SQL_THREAD: SQL %q IO %q", st["Slave_SQL_Running"], st["Slave_IO_Running"])
	}
	mustExec(t, pdb, "INSERT INTO rt.t VALUES (2)")
	// The event arrives (IO thread) but is not applied.
	time.Sleep(500 * time.Millisecond)
	if n := count(t, rdb, "rt.t"); n != 1 {
		t.Fatalf("replica applied with its SQL thread stopped: %d rows", n)
	}
	r.StartSQLThread(t)
	r.WaitCaughtUp(t)
	if n := count(t, rdb, "rt.t"); n != 2 {
		t.Fatalf("replica has %d rows after START SLAVE SQL_THREAD, want 2", n)
	}

	r.StopReplication(t)
	if st := r.SlaveStatus(t); st["Slave_SQL_Running"] != "No" || st["Slave_IO_Running"] != "No" {
		t.Fatalf("after STOP SLAVE: SQL %q IO %q", st["Slave_SQL_Running"], st["Slave_IO_Running"])
	}
	r.StartReplication(t)
	r.WaitRunning(t)

	r.Kill(t)
	if err := rdb.Ping(); err == nil {
		t.Fatal("killed replica answered")
	}
	mustExec(t, pdb, "INSERT INTO rt.t VALUES (3)")
	r.Restart(t)
	r.WaitRunning(t)
	r.WaitCaughtUp(t)
	if n := count(t, rdb, "rt.t"); n != 3 {
		t.Fatalf("restarted replica has %d rows, want 3", n)
	}
}

// TestTwoReplicas: each replica of one primary replicates on its own.
func TestTwoReplicas(t *testing.T) {
	p := StartPrimary(t)
	a, b := StartReplica(t, p), StartReplica(t, p)
	pdb := p.Open(t, "")
	mustExec(t, pdb, "CREATE DATABASE rt")
	mustExec(t, pdb, "CREATE TABLE rt.t (id INT PRIMARY KEY)")
	a.WaitCaughtUp(t)
	b.WaitCaughtUp(t)
	b.StopSQLThread(t)
	mustExec(t, pdb, "INSERT INTO rt.t VALUES (1)")
	a.WaitCaughtUp(t)
	if n := count(t, a.Open(t, ""), "rt.t"); n != 1 {
		t.Fatalf("replica a has %d rows, want 1", n)
	}
	if n := count(t, b.Open(t, ""), "rt.t"); n != 0 {
		t.Fatalf("replica b applied with its SQL thread stopped: %d rows", n)
	}
}

func mustExec(t *testing.T, db *sql.DB, q string) {
	t.Helper()
	if _, err := db.Exec(q); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func count(t *testing.T, db *sql.DB, table string) int {
	t.Helper()
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM " + table).Scan(&n); err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return n
}
