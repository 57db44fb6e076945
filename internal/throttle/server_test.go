package throttle_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"prune-tokens/internal/test/mariadbtest"
	"prune-tokens/internal/throttle"
)

// patience bounds every wait for a server to change state; the tests never
// assert how fast anything happens.
const patience = 60 * time.Second

// loop calls Wait before each "batch" as the apply loop does, until its
// context ends or Wait fails, and counts the batches Wait let through.
type loop struct {
	batches atomic.Int64
	done    chan struct{} // closed when the loop has ended, with err set
	err     error
	cancel  context.CancelFunc
}

func startLoop(t *testing.T, thr *throttle.Throttler) *loop {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	l := &loop{done: make(chan struct{}), cancel: cancel}
	go func() {
		defer close(l.done)
		for {
			if err := thr.Wait(ctx); err != nil {
				l.err = err
				return
			}
			l.batches.Add(1)
			time.Sleep(5 * time.Millisecond) // the batch
		}
	}()
	t.Cleanup(func() { cancel(); <-l.done })
	return l
}

// passes waits until Wait has let n more batches through.
func (l *loop) passes(t *testing.T, what string, n int64) {
	t.Helper()
	want := l.batches.Load() + n
	deadline := time.Now().Add(patience)
	for l.batches.Load() < want {
		select {
		case <-l.done:
			t.Fatalf("%s: Wait failed: %v", what, l.err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no batch let through in %v", what, patience)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// held checks that no batch runs for a while: Wait holds.
func (l *loop) held(t *testing.T, what string) {
	t.Helper()
	n := l.batches.Load()
	time.Sleep(time.Second)
	if got := l.batches.Load(); got != n {
		t.Fatalf("%s: %d batches ran while Wait should hold them", what, got-n)
	}
	select {
	case <-l.done:
		t.Fatalf("%s: Wait ended (%v) instead of holding", what, l.err)
	default:
	}
}

// stopped waits for the loop's Wait to fail and returns its error.
func (l *loop) stopped(t *testing.T, what string) error {
	t.Helper()
	select {
	case <-l.done:
		return l.err
	case <-time.After(patience):
		t.Fatalf("%s: Wait still running after %v", what, patience)
		return nil
	}
}

// holds checks one fault: once the status shows a reason with all of
// parts, no batch runs; after fix, batches run again.
func (l *loop) holds(t *testing.T, thr *throttle.Throttler, what string, parts []string, fix func()) {
	t.Helper()
	until(t, thr, what, reasonWith(parts...))
	l.held(t, what)
	fix()
	l.passes(t, what+", fixed", 3)
}

// until polls the throttler's status until ok says yes.
func until(t *testing.T, thr *throttle.Throttler, what string, ok func(throttle.Status) bool) throttle.Status {
	t.Helper()
	deadline := time.Now().Add(patience)
	for {
		st := thr.Status()
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached after %v; status %s (%s)", what, patience, st, st.Details())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func reasonWith(parts ...string) func(throttle.Status) bool {
	return func(st throttle.Status) bool {
		for _, r := range st.Reasons {
			all := true
			for _, p := range parts {
				all = all && strings.Contains(r, p)
			}
			if all {
				return true
			}
		}
		return false
	}
}

func newThrottler(t *testing.T, cfg throttle.Config) *throttle.Throttler {
	t.Helper()
	if cfg.BatchSize == 0 {
		cfg.BatchSize = 1000
	}
	thr, err := throttle.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return thr
}

func exec(t *testing.T, db interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
}, q string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	if _, err := db.ExecContext(ctx, q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// writer keeps writing to the primary until the test ends, as the service
// would: replicas have something to fall behind on.
func writer(t *testing.T, db *sql.DB, every time.Duration, q string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	wg.Go(func() {
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				_, _ = db.ExecContext(ctx, q)
			}
		}
	})
}

// heartbeatSQL creates a pt-heartbeat table (its own schema, trimmed to the
// columns the throttler reads) and writeHeartbeat updates it as
// `pt-heartbeat --update --utc` does.
const (
	heartbeatSQL   = "CREATE TABLE hb.heartbeat (ts varchar(26) NOT NULL, server_id int unsigned NOT NULL PRIMARY KEY, file varchar(255) DEFAULT NULL, position bigint unsigned DEFAULT NULL)"
	writeHeartbeat = "REPLACE INTO hb.heartbeat (ts, server_id) VALUES (DATE_FORMAT(UTC_TIMESTAMP(6), '%Y-%m-%dT%H:%i:%s.%f'), @@server_id)"
)

// TestReplicaLagHeartbeat: with a pt-heartbeat table, lag is read to the
// millisecond on each replica and the worst counts. STOP SLAVE SQL_THREAD
// on one of two replicas while the primary keeps writing: once its lag
// passes the limit Wait holds, naming that replica only; START SLAVE
// SQL_THREAD lets Wait return.
func TestReplicaLagHeartbeat(t *testing.T) {
	p := mariadbtest.StartPrimary(t)
	r1, r2 := mariadbtest.StartReplica(t, p), mariadbtest.StartReplica(t, p)
	pdb := p.Open(t, "")
	exec(t, pdb, "CREATE DATABASE hb")
	exec(t, pdb, heartbeatSQL)
	exec(t, pdb, writeHeartbeat)
	writer(t, pdb, 50*time.Millisecond, writeHeartbeat)
	r1.WaitCaughtUp(t)
	r2.WaitCaughtUp(t)

	var logs []string
	var logMu sync.Mutex
	// Sub-second limit: only the heartbeat can measure it.
	thr := newThrottler(t, throttle.Config{Primary: pdb, HeartbeatTable: "hb.heartbeat", MaxReplicaLag: 700 * time.Millisecond,
		Replicas: []throttle.Replica{{Name: "replica-1", DB: r1.Open(t, "")}, {Name: "replica-2", DB: r2.Open(t, "")}},
		Logf:     func(f string, a ...any) { logMu.Lock(); logs = append(logs, fmt.Sprintf(f, a...)); logMu.Unlock() }})
	if _, err := thr.Preflight(context.Background()); err != nil {
		t.Fatalf("preflight: %v", err)
	}
	l := startLoop(t, thr)
	l.passes(t, "replicas caught up", 3)
	st := until(t, thr, "both replicas under 0.7s", func(st throttle.Status) bool {
		return st.State == throttle.Running && st.Lag >= 0 && st.Lag < 700*time.Millisecond
	})
	if st.Lag%time.Second == 0 {
		// Seconds_Behind_Master could only say 0 or 1s.
		t.Errorf("heartbeat lag %v is whole seconds", st.Lag)
	}

	r2.StopSQLThread(t)
	// The worst replica is named; the one that keeps up is not.
	st = until(t, thr, "replica-2 lag past 0.7s", func(st throttle.Status) bool {
		return len(st.Reasons) == 1 && reasonWith("replica lag", "> 0.7s (replica-2)")(st)
	})
	l.held(t, "replica-2 lagging")
	if st.LagReplica != "replica-2" || st.Lag <= 700*time.Millisecond {
		t.Fatalf("worst lag %v on %q, want replica-2's, over the limit", st.Lag, st.LagReplica)
	}
	r2.StartSQLThread(t)
	l.passes(t, "replica-2 restarted", 3)
	until(t, thr, "running after catching up", func(st throttle.Status) bool { return st.State == throttle.Running })
	var spent time.Duration
	for _, rt := range thr.Status().ThrottledFor {
		if rt.Reason == "replica lag (replica-2)" {
			spent = rt.Time
		}
	}
	if spent < time.Second {
		t.Fatalf("time held for replica-2's lag %v, want at least the second the test waited; %s", spent, thr.Status().Spent())
	}
	logMu.Lock()
	defer logMu.Unlock()
	joined := strings.Join(logs, "\n")
	if !strings.Contains(joined, "throttle: throttled: replica lag") || !strings.Contains(joined, "throttle: clear, resuming") {
		t.Fatalf("log lacks the change of state:\n%s", joined)
	}
}

// TestReplicaLagSlaveStatus: without a heartbeat table, Seconds_Behind_Master.
// A row lock held on the replica blocks its SQL thread on the primary's
// update, so the replica falls behind while replication runs: Wait holds
// with the lag and the replica's name, and returns once the lock goes.
// Stopping the SQL thread makes the lag NULL: held as replication stopped.
func TestReplicaLagSlaveStatus(t *testing.T) {
	p := mariadbtest.StartPrimary(t)
	r := mariadbtest.StartReplica(t, p)
	pdb, rdb := p.Open(t, ""), r.Open(t, "")
	exec(t, pdb, "CREATE DATABASE rt")
	exec(t, pdb, "CREATE TABLE rt.t (id INT PRIMARY KEY, v INT NOT NULL)")
	exec(t, pdb, "INSERT INTO rt.t VALUES (1, 0)")
	r.WaitCaughtUp(t)
	// The SQL thread is what waits for the row lock below: it must wait for
	// as long as the test needs, not give up after the default 50 s (and
	// then retry or stop, which a busy machine could reach). A thread reads
	// the global value when it starts, so the SQL thread is restarted.
	exec(t, rdb, "SET GLOBAL innodb_lock_wait_timeout = 3600")
	r.StopSQLThread(t)
	r.StartSQLThread(t)

	thr := newThrottler(t, throttle.Config{Primary: pdb, Replicas: []throttle.Replica{{Name: "replica-1", DB: rdb}}})
	needs, err := thr.Preflight(context.Background())
	if err != nil {
		t.Fatalf("preflight: %v", err)
	}
	if n := needs[len(needs)-1]; n.Server != "replica-1" || n.Privilege != "SLAVE MONITOR" {
		t.Fatalf("replica need %+v, want SLAVE MONITOR on MariaDB 10.11", n)
	}
	ctx := context.Background()
	l := startLoop(t, thr)
	l.passes(t, "caught up", 3)
	until(t, thr, "lag 0 on replica-1", func(st throttle.Status) bool { return st.Lag == 0 && st.LagReplica == "replica-1" })

	// Lock the row on the replica, then update it on the primary.
	lockConn, err := rdb.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer lockConn.Close()
	exec(t, lockConn, "BEGIN")
	exec(t, lockConn, "SELECT * FROM rt.t WHERE id = 1 FOR UPDATE")
	exec(t, pdb, "UPDATE rt.t SET v = v + 1 WHERE id = 1")
	l.holds(t, thr, "SQL thread blocked", []string{"replica lag", "> 1s (replica-1)"}, func() {
		if st := thr.Status(); st.Lag <= time.Second {
			t.Fatalf("status lag %v, want over 1s", st.Lag)
		}
		exec(t, lockConn, "ROLLBACK")
	})

	r.StopSQLThread(t)
	l.holds(t, thr, "SQL thread stopped", []string{"replication stopped (replica-1)", "Slave_SQL_Running=No", "Slave_IO_Running=Yes"},
		func() { r.StartSQLThread(t) })
}

// TestReplicaGoneFailsClosed: a replica with replication stopped, one killed
// and one hung each hold Wait with their reason until they are back.
func TestReplicaGoneFailsClosed(t *testing.T) {
	p := mariadbtest.StartPrimary(t)
	r := mariadbtest.StartReplica(t, p)
	pdb := p.Open(t, "")
	// A short read timeout keeps the hung case quick; production keeps 5s.
	thr := newThrottler(t, throttle.Config{Primary: pdb, ReadTimeout: 2 * time.Second,
		Replicas: []throttle.Replica{{Name: "replica-1", DB: r.Open(t, "")}}})
	l := startLoop(t, thr)
	l.passes(t, "replica running", 3)

	r.StopReplication(t)
	l.holds(t, thr, "STOP SLAVE", []string{"replication stopped (replica-1)", "Slave_SQL_Running=No", "Slave_IO_Running=No"},
		func() { r.StartReplication(t) })

	r.Kill(t)
	l.holds(t, thr, "replica killed", []string{"replica unreadable (replica-1)"}, func() {
		r.Restart(t)
		r.WaitRunning(t)
	})

	r.Freeze(t)
	l.holds(t, thr, "replica hung", []string{"replica unreadable (replica-1): no answer within 2s"}, func() { r.Thaw(t) })

	// A Wait held by a dead replica still ends with its context (a stop
	// request, --maxRuntime), with the context's error.
	r.Kill(t)
	until(t, thr, "replica killed again", reasonWith("replica unreadable (replica-1)"))
	l.cancel()
	if err := l.stopped(t, "cancelled"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait after cancel = %v, want context.Canceled", err)
	}
}

// sleepers opens n sessions running SELECT SLEEP, which count in
// Threads_running, and returns a func that ends them with KILL QUERY (the
// driver does not stop a running statement on its own).
func sleepers(t *testing.T, db *sql.DB, n int) (stop func()) {
	t.Helper()
	ctx := context.Background()
	var ids []int64
	var wg sync.WaitGroup
	for range n {
		c, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var id int64
		if err := c.QueryRowContext(ctx, "SELECT CONNECTION_ID()").Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
		wg.Go(func() {
			defer c.Close()
			_, _ = c.ExecContext(ctx, "SELECT SLEEP(600)")
		})
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			for _, id := range ids {
				_, _ = db.ExecContext(ctx, fmt.Sprintf("KILL QUERY %d", id))
			}
			wg.Wait()
		})
	}
	t.Cleanup(stop)
	return stop
}

func threadsRunning(t *testing.T, db *sql.DB) int64 {
	t.Helper()
	var name string
	var v int64
	if err := db.QueryRow("SHOW GLOBAL STATUS LIKE 'Threads_running'").Scan(&name, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestMaxLoad: sessions running SLEEP raise Threads_running past --maxLoad:
// Wait holds with the variable, its value and the limit, until they end.
// Raising the limit at run time (the control socket) releases it too.
func TestMaxLoad(t *testing.T) {
	s := mariadbtest.Start(t)
	db := s.Open(t, "")
	base := threadsRunning(t, db)
	limit := base + 3
	load, err := throttle.ParseThresholds(fmt.Sprintf("Threads_running=%d,Threads_connected=1000", limit))
	if err != nil {
		t.Fatal(err)
	}
	thr := newThrottler(t, throttle.Config{Primary: db, MaxLoad: load})
	if _, err := thr.Preflight(context.Background()); err != nil {
		t.Fatal(err)
	}
	l := startLoop(t, thr)
	l.passes(t, "idle server", 3)

	stop := sleepers(t, db, 8)
	st := until(t, thr, "Threads_running past the limit", reasonWith("Threads_running", fmt.Sprintf("> %d", limit)))
	l.held(t, "over max load")
	if st.State != throttle.Throttled || len(st.Reasons) != 1 {
		t.Fatalf("status %s, want throttled on Threads_running alone", st)
	}
	if !strings.Contains(st.Details(), "Threads_running ") || !strings.Contains(st.Details(), "Threads_connected ") {
		t.Fatalf("details %q lack the load figures", st.Details())
	}
	stop()
	l.passes(t, "sleepers killed", 3)

	// Held again, then the operator raises the limit.
	sleepers(t, db, 8)
	until(t, thr, "Threads_running past the limit again", reasonWith("Threads_running"))
	l.held(t, "over max load again")
	old, err := thr.SetMaxLoad("Threads_running=1000")
	if err != nil || old != load.String() {
		t.Fatalf("SetMaxLoad: %q, %v", old, err)
	}
	l.passes(t, "limit raised", 3)
}

// TestCriticalLoad: Threads_running past --criticalLoad on checks a second
// apart ends Wait with ErrCriticalLoad; a spike shorter than the
// confirmation window only holds.
func TestCriticalLoad(t *testing.T) {
	s := mariadbtest.Start(t)
	db := s.Open(t, "")
	limit := threadsRunning(t, db) + 3
	crit, _ := throttle.ParseThresholds(fmt.Sprintf("Threads_running=%d", limit))

	// A spike inside a (long, for the test) confirmation window.
	thr := newThrottler(t, throttle.Config{Primary: db, CriticalLoad: crit, CriticalConfirm: 30 * time.Second})
	l := startLoop(t, thr)
	l.passes(t, "idle server", 3)
	stop := sleepers(t, db, 8)
	until(t, thr, "critical load seen", reasonWith("critical load Threads_running"))
	l.held(t, "critical load, unconfirmed")
	stop()
	l.passes(t, "spike over", 3)
	l.cancel()
	l.stopped(t, "first loop")

	thr = newThrottler(t, throttle.Config{Primary: db, CriticalLoad: crit})
	l = startLoop(t, thr)
	l.passes(t, "idle server", 3)
	start := time.Now()
	sleepers(t, db, 8)
	err := l.stopped(t, "sustained critical load")
	if !errors.Is(err, throttle.ErrCriticalLoad) {
		t.Fatalf("Wait = %v, want ErrCriticalLoad", err)
	}
	// Two checks at least a second apart, never one.
	if took := time.Since(start); took < time.Second {
		t.Fatalf("critical after %v, before a second check a second later", took)
	}
	if !strings.Contains(err.Error(), "Threads_running") || !strings.Contains(err.Error(), fmt.Sprintf("> %d, exceeded on checks", limit)) {
		t.Fatalf("error %q does not name the variable and limit", err)
	}
	if st := thr.Status(); st.State != throttle.Critical {
		t.Fatalf("state %s, want critical", st.State)
	}
}

// TestHistoryLength: a consistent snapshot held open on one connection while
// another commits many updates keeps purge from running: the history list
// length passes a low --maxHistoryLength and Wait holds. Once the snapshot
// is released purge catches up, and Wait returns only below 80%.
func TestHistoryLength(t *testing.T) {
	s := mariadbtest.Start(t)
	db := s.Open(t, "")
	exec(t, db, "CREATE DATABASE h")
	exec(t, db, "CREATE TABLE h.t (id INT PRIMARY KEY, v INT NOT NULL)")
	exec(t, db, "INSERT INTO h.t SELECT seq, 0 FROM h.seq_1_to_2000")

	const limit = 500
	thr := newThrottler(t, throttle.Config{Primary: db, MaxHistoryLength: limit})
	ctx := context.Background()
	l := startLoop(t, thr)
	l.passes(t, "no backlog", 3)

	snap, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	exec(t, snap, "START TRANSACTION WITH CONSISTENT SNAPSHOT")
	// Each committed transaction leaves one entry in the history list.
	for i := 1; i <= 2000; i++ {
		exec(t, db, "UPDATE h.t SET v = v + 1 WHERE id = ?", i)
	}
	st := until(t, thr, "history past the limit", reasonWith("history length", fmt.Sprintf("> %d", limit)))
	l.held(t, "history over the limit")
	if st.HistoryLength <= limit {
		t.Fatalf("status history %d", st.HistoryLength)
	}
	l.held(t, "snapshot still open")

	// Hysteresis: with the limit raised just above the history (which the
	// open snapshot keeps from shrinking), the history is under the limit
	// but not under 80% of it, and Wait must go on holding.
	h := thr.Status().HistoryLength
	if _, err := thr.SetMaxHistoryLength(h + h/10); err != nil {
		t.Fatal(err)
	}
	until(t, thr, "under the raised limit, over 80% of it", reasonWith("history length", "waiting for <"))
	l.held(t, "history between 80% and 100% of the limit")
	if _, err := thr.SetMaxHistoryLength(limit); err != nil {
		t.Fatal(err)
	}

	exec(t, snap, "COMMIT")
	l.passes(t, "snapshot released", 1)
	if h := thr.Status().HistoryLength; h >= limit*8/10 {
		t.Fatalf("resumed at history length %d, want below 80%% of %d", h, limit)
	}
}

// TestOneStatementPerSignalPerCheck: each check sends one SHOW GLOBAL STATUS
// to the primary (load and history length together) and one SHOW REPLICA
// STATUS to each replica; passing readings are reused for CacheFor.
func TestOneStatementPerSignalPerCheck(t *testing.T) {
	p := mariadbtest.StartPrimary(t)
	r := mariadbtest.StartReplica(t, p)
	pdb, rdb := p.Open(t, ""), r.Open(t, "")
	load, _ := throttle.ParseThresholds("Threads_running=1000,Threads_connected=1000")
	crit, _ := throttle.ParseThresholds("Threads_running=2000")
	count := func(db *sql.DB, name string) int64 {
		var n string
		var v int64
		if err := db.QueryRow("SHOW GLOBAL STATUS LIKE '"+name+"'").Scan(&n, &v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	run := func(cacheFor time.Duration, waits int) (primary, replica int64) {
		thr := newThrottler(t, throttle.Config{Primary: pdb, MaxLoad: load, CriticalLoad: crit, CacheFor: cacheFor,
			Replicas: []throttle.Replica{{DB: rdb}}})
		p0, r0 := count(pdb, "Com_show_status"), count(rdb, "Com_show_slave_status")
		for range waits {
			if err := thr.Wait(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		// The counting SHOW STATUS itself counts once.
		return count(pdb, "Com_show_status") - p0 - 1, count(rdb, "Com_show_slave_status") - r0
	}
	if p, r := run(throttle.Off, 50); p != 50 || r != 50 {
		t.Fatalf("50 uncached checks sent %d SHOW STATUS to the primary and %d SHOW REPLICA STATUS to the replica, want 50 and 50", p, r)
	}
	if p, r := run(time.Hour, 50); p != 1 || r != 1 {
		t.Fatalf("50 waits within CacheFor sent %d and %d statements, want 1 and 1", p, r)
	}

	// A Wait that finds the reading over three quarters of CacheFor old uses it
	// and takes the next one in the background, which the Waits after it
	// use without sending anything. The window between three quarters and
	// all of CacheFor is short; on a busy machine the Wait can land past it,
	// so the round is tried again until one lands inside.
	const cacheFor = 2 * time.Second
	wait := func(thr *throttle.Throttler) {
		t.Helper()
		if err := thr.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	for try := 1; ; try++ {
		thr := newThrottler(t, throttle.Config{Primary: pdb, MaxLoad: load, CacheFor: cacheFor, Replicas: []throttle.Replica{{DB: rdb}}})
		p0, r0 := count(pdb, "Com_show_status"), count(rdb, "Com_show_slave_status")
		wait(thr)
		first := thr.Status().CheckedAt
		for time.Since(first) <= cacheFor*3/4 {
			time.Sleep(10 * time.Millisecond)
		}
		wait(thr) // the first reading, still young enough; a refresh starts
		decided := thr.Status().CheckedAt
		if time.Since(first) >= cacheFor {
			if try == 5 {
				t.Fatalf("five Waits meant for the last quarter of CacheFor came too late")
			}
			continue // too late to tell; the machine is busy
		}
		if !decided.Equal(first) {
			t.Fatalf("the Wait at 3/4 CacheFor decided on a reading of %s, want the first one's (%s)", decided, first)
		}
		// The replica sees a second SHOW REPLICA STATUS, with no Wait asking.
		deadline := time.Now().Add(patience)
		for count(rdb, "Com_show_slave_status")-r0 < 2 {
			if time.Now().After(deadline) {
				t.Fatal("no reading was taken in the background")
			}
			time.Sleep(5 * time.Millisecond)
		}
		// The refreshed reading is stored after its last read; the Waits
		// then decide on it.
		for wait(thr); !thr.Status().CheckedAt.After(first); wait(thr) {
			if time.Now().After(deadline) {
				t.Fatal("the Waits after the refresh never decided on a later reading")
			}
			time.Sleep(5 * time.Millisecond)
		}
		wait(thr)
		if time.Since(thr.Status().CheckedAt) >= cacheFor*3/4 {
			if try == 5 {
				t.Fatalf("five rounds too slow to tell the refresh from a new reading")
			}
			continue
		}
		// Each count reads the primary's status once more.
		if p, r := count(pdb, "Com_show_status")-p0-1, count(rdb, "Com_show_slave_status")-r0; p != 2 || r != 2 {
			t.Fatalf("two readings (the first and the refresh) sent %d SHOW STATUS and %d SHOW REPLICA STATUS, want 2 and 2", p, r)
		}
		break
	}

	// A background reading stuck on a hung replica (up to ReadTimeout)
	// does not keep a Wait from ending with its context (SIGINT, a stop
	// request): the Wait returns the context's error at once. Waits go on
	// passing on the cached reading until it is too old; the first one that
	// needs the hung reading must end with its context.
	thr := newThrottler(t, throttle.Config{Primary: pdb, MaxLoad: load, CacheFor: cacheFor, ReadTimeout: 30 * time.Second,
		Replicas: []throttle.Replica{{DB: r.Open(t, "")}}})
	wait(thr)
	r.Freeze(t)
	defer r.Thaw(t)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		began := time.Now()
		err := thr.Wait(ctx)
		cancel()
		if err == nil {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Wait while the background reading hangs = %v, want context.DeadlineExceeded", err)
		}
		if d := time.Since(began); d > 10*time.Second {
			t.Fatalf("Wait took %s to end with its context, want about 200ms (the hung reading has 30s)", d)
		}
		break
	}
}

// TestPreflightRestrictedUser: an account without the privileges each
// signal needs is told which are missing, per server and signal, before the
// first batch; granted them, the checks run.
func TestPreflightRestrictedUser(t *testing.T) {
	p := mariadbtest.StartPrimary(t)
	r := mariadbtest.StartReplica(t, p)
	admin := p.Open(t, "")
	exec(t, admin, "CREATE DATABASE hb")
	exec(t, admin, heartbeatSQL)
	exec(t, admin, writeHeartbeat)
	// Created on the primary, the account replicates to the replica.
	exec(t, admin, "CREATE USER 'thr'@'127.0.0.1' IDENTIFIED BY 'thr-pass'")
	r.WaitCaughtUp(t)

	as := func(s *mariadbtest.Server) *sql.DB {
		db, err := sql.Open("mysql", "thr:thr-pass@tcp("+s.Addr()+")/?timeout=5s")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	load, _ := throttle.ParseThresholds("Threads_running=100")
	// Global privileges count from a session's login: after the grants the
	// throttlers are built again on new pools, as a rerun of apply would.
	build := func() (status, heartbeat *throttle.Throttler) {
		pdb, rdb := as(p), as(r.Server)
		status = newThrottler(t, throttle.Config{Primary: pdb, MaxLoad: load, HistoryFromMetrics: true,
			Replicas: []throttle.Replica{{Name: "replica-1", DB: rdb}}})
		heartbeat = newThrottler(t, throttle.Config{Primary: pdb, HeartbeatTable: "hb.heartbeat", MaxHistoryLength: throttle.Off,
			Replicas: []throttle.Replica{{Name: "replica-1", DB: rdb}}})
		return status, heartbeat
	}
	status, heartbeat := build()
	ctx := context.Background()

	needs, err := status.Preflight(ctx)
	if err == nil {
		t.Fatal("preflight passed for an account without SLAVE MONITOR and PROCESS")
	}
	msg := err.Error()
	for _, want := range []string{"replica-1 replica lag: missing SLAVE MONITOR", "primary history length: missing PROCESS"} {
		if !strings.Contains(msg, want) {
			t.Errorf("preflight error lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "primary load") || strings.Contains(msg, "\n") {
		t.Errorf("preflight error names load (no privilege needed) or is not one line:\n%s", msg)
	}
	grants := map[string]string{}
	for _, n := range needs {
		grants[n.Server+" "+n.Signal] = n.Grant
		if n.Signal == "load" && (n.Privilege != "" || n.Problem != "") {
			t.Errorf("load need %+v, want no privilege and no problem", n)
		}
	}
	if g := grants["replica-1 replica lag"]; g != "GRANT SLAVE MONITOR ON *.* TO 'thr'@'127.0.0.1'" {
		t.Errorf("replica grant %q", g)
	}
	if g := grants["primary history length"]; g != "GRANT PROCESS ON *.* TO 'thr'@'127.0.0.1'" {
		t.Errorf("history grant %q", g)
	}
	// Run anyway, the checks hold (fail closed) rather than pass.
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	err = status.Wait(cctx)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait without privileges = %v, want held until the deadline", err)
	}
	if st := status.Status(); !reasonWith("replica unreadable (replica-1)", "SLAVE MONITOR")(st) || !reasonWith("history length unreadable", "PROCESS")(st) {
		t.Fatalf("status without privileges: %s", st)
	}

	if _, err := heartbeat.Preflight(ctx); err == nil || !strings.Contains(err.Error(), "replica-1 replica lag: missing SELECT on hb.heartbeat") {
		t.Fatalf("heartbeat preflight without SELECT: %v", err)
	}

	for _, g := range []string{grants["replica-1 replica lag"], grants["primary history length"], "GRANT SELECT ON hb.heartbeat TO 'thr'@'127.0.0.1'"} {
		exec(t, admin, g)
	}
	r.WaitCaughtUp(t)
	status, heartbeat = build()
	for name, thr := range map[string]*throttle.Throttler{"status": status, "heartbeat": heartbeat} {
		if _, err := thr.Preflight(ctx); err != nil {
			t.Errorf("%s preflight with the grants: %v", name, err)
		}
	}
	cctx, cancel = context.WithTimeout(ctx, patience)
	defer cancel()
	if err := status.Wait(cctx); err != nil {
		t.Fatalf("Wait with the grants: %v (%s)", err, status.Status())
	}

	// A server that is not a replica is refused as one.
	notReplica := newThrottler(t, throttle.Config{Primary: admin, MaxHistoryLength: throttle.Off,
		Replicas: []throttle.Replica{{Name: "oops", DB: admin}}})
	if _, err := notReplica.Preflight(ctx); err == nil || !strings.Contains(err.Error(), "oops replica lag: not a replica") {
		t.Fatalf("preflight of a primary named as replica: %v", err)
	}
}
