package applier

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"prune-tokens/internal/dbconn"
	"prune-tokens/internal/logging"
	"prune-tokens/internal/test/appliertest"
	"prune-tokens/internal/test/dbtest"
	"prune-tokens/internal/test/mariadbtest"
	"prune-tokens/internal/throttle"
	"prune-tokens/manifest"
)

// The tests here run apply against real servers while something on them
// makes a throttle signal cross its limit, and check that apply deletes
// nothing while it does (rows counted across the hold), says why, goes on
// when it clears, and ends in exactly the state of an uninterrupted run.

// syncBuf is a log buffer apply and the test share.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// background is an apply running in a goroutine.
type background struct {
	done chan struct{}
	res  *Result
	err  error
	log  *syncBuf
	// held is what holdsStill saw, by reason: the run, once ended, must
	// report at least that much time held for it.
	held map[string]time.Duration
}

func startBackground(o Options) *background {
	b := &background{done: make(chan struct{}), log: &syncBuf{}, held: map[string]time.Duration{}}
	o.Log = b.log
	o.Logger = logging.New(b.log, logging.Text, logging.Options{})
	o.Progress = ProgressLines
	if o.StatusEvery == 0 {
		o.StatusEvery = 200 * time.Millisecond
	}
	go func() {
		defer close(b.done)
		b.res, b.err = Run(context.Background(), o)
	}()
	return b
}

// wait waits for apply to end; a hang fails the test.
func (b *background) wait(t *testing.T) (*Result, error) {
	t.Helper()
	select {
	case <-b.done:
	case <-time.After(3 * time.Minute):
		t.Fatalf("apply still running after 3 minutes\n%s", b.log)
	}
	if b.err == nil {
		for reason, d := range b.held {
			if got := heldFor(b.res, reason); got < d {
				t.Errorf("apply reports %s held for %q, less than the %s it deleted nothing: slow, not held (%v)", got, reason, d, b.res.Waited)
			}
		}
	}
	return b.res, b.err
}

// waitLog waits until the log holds all of want.
func (b *background) waitLog(t *testing.T, want ...string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		log := b.log.String()
		ok := true
		for _, w := range want {
			ok = ok && strings.Contains(log, w)
		}
		if ok {
			return
		}
		select {
		case <-b.done:
			t.Fatalf("apply ended (err %v) before logging %q\n%s", b.err, want, log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the log after a minute\n%s", want, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// rowsLeft counts the rows of every table, to see whether anything is
// deleted during a hold.
func rowsLeft(t *testing.T, db *dbtest.DB) int {
	t.Helper()
	n := 0
	for _, tbl := range dbtest.Tables {
		n += db.Count(t, tbl)
	}
	return n
}

// holdsStill checks that apply deletes nothing for a while, and is still
// running. Deleting nothing could also mean a slow batch, so wait later
// checks that the run reports at least d held for reason.
func holdsStill(t *testing.T, b *background, db *dbtest.DB, reason string, d time.Duration) {
	t.Helper()
	before := rowsLeft(t, db)
	time.Sleep(d)
	b.held[reason] += d
	if after := rowsLeft(t, db); after != before {
		t.Fatalf("%d rows deleted while apply was held\n%s", before-after, b.log)
	}
	select {
	case <-b.done:
		t.Fatalf("apply ended while it should be held: %v\n%s", b.err, b.log)
	default:
	}
}

// gate stops apply between batches once done reaches n, so that the test
// goroutine (the only one that may call t.Fatal) can change the world
// before apply goes on.
type gate struct {
	n               int64
	reached, resume chan struct{}
	once, released  sync.Once
}

func newGate(t *testing.T, n int64) *gate {
	g := &gate{n: n, reached: make(chan struct{}), resume: make(chan struct{})}
	t.Cleanup(g.release) // a failed test must not leave apply waiting
	return g
}

// hook is apply's OnBatch.
func (g *gate) hook(done int64) {
	if done >= g.n {
		g.once.Do(func() { close(g.reached); <-g.resume })
	}
}

// await waits until apply stands at the gate.
func (g *gate) await(t *testing.T, b *background) {
	t.Helper()
	select {
	case <-g.reached:
	case <-b.done:
		t.Fatalf("apply ended (%v) before row %d\n%s", b.err, g.n, b.log)
	}
}

func (g *gate) release() { g.released.Do(func() { close(g.resume) }) }

// privateFxA creates an FxA database on a private server.
func privateFxA(t *testing.T, srv *mariadbtest.Server, name string) *dbtest.DB {
	t.Helper()
	dsn := srv.CreateFxA(t, name)
	return &dbtest.DB{Name: name, DSN: dsn, SQL: srv.Open(t, name)}
}

func parse(t *testing.T, dsn string) Options {
	t.Helper()
	cfg, err := dbconn.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return Options{DSN: cfg, Progress: ProgressOff, LockName: "prune-tokens-test/" + cfg.Addr + "/" + cfg.DBName,
		Retry: RetryPolicy{Attempts: 3, Initial: time.Millisecond, Max: 10 * time.Millisecond}}
}

var fewSessions = appliertest.Sizes{MaxSessionAccounts: 1, SessionsPerAccount: 10, TokenAgeSessions: 60, OtherTokens: 4}

// TestReplicaLagHoldsApply: a primary with a real replica. With a
// pt-heartbeat table and a sub-second limit, stopping the replica's SQL
// thread while apply runs makes the lag pass the limit: apply holds, says
// "replica lag ... (replica)", and goes on when the thread starts again.
// Without a heartbeat, stopped replication (NULL lag) and a killed replica
// hold it too (fail closed). Each run ends exact.
func TestReplicaLagHoldsApply(t *testing.T) {
	p := mariadbtest.StartPrimary(t)
	r := mariadbtest.StartReplica(t, p)
	replicaCfg, err := dbconn.ParseServer(r.DSN(""))
	if err != nil {
		t.Fatal(err)
	}

	t.Run("heartbeat lag", func(t *testing.T) {
		db := privateFxA(t, p, "fxa_lag")
		f := appliertest.New(t, db, 61, fewSessions)
		path, _ := f.Manifest(t, t.TempDir())
		mustExec(t, db.SQL, "CREATE TABLE heartbeat (ts varchar(26) NOT NULL, server_id int unsigned NOT NULL PRIMARY KEY)")
		stopBeat := make(chan struct{})
		beatDone := make(chan struct{})
		go func() { // pt-heartbeat --update --utc --interval 0.05
			defer close(beatDone)
			for {
				db.SQL.Exec("REPLACE INTO heartbeat (ts, server_id) VALUES (DATE_FORMAT(UTC_TIMESTAMP(6), '%Y-%m-%dT%H:%i:%s.%f'), @@server_id)")
				select {
				case <-stopBeat:
					return
				case <-time.After(50 * time.Millisecond):
				}
			}
		}()
		defer func() { close(stopBeat); <-beatDone }()
		r.WaitCaughtUp(t)

		o := parse(t, db.DSN)
		o.Manifest, o.BatchSize, o.Wait = path, 3, 20*time.Millisecond
		o.Approve = appliertest.Approval(path)
		o.Replicas, o.HeartbeatTable, o.MaxReplicaLag = []*mysql.Config{replicaCfg}, "fxa_lag.heartbeat", 400*time.Millisecond
		g := newGate(t, 9)
		o.OnBatch = g.hook
		b := startBackground(o)
		g.await(t, b)
		r.StopSQLThread(t)
		g.release()
		b.waitLog(t, "throttled", "replica lag", replicaCfg.Addr)
		holdsStill(t, b, db, "replica lag", 1500*time.Millisecond)
		r.StartSQLThread(t)
		res, err := b.wait(t)
		if err != nil {
			t.Fatalf("%v\n%s", err, b.log)
		}
		f.Check(t)
		if !hasReason(res, "replica lag") {
			t.Errorf("time held for replica lag not reported: %v", res.Waited)
		}
	})

	t.Run("replication stopped, replica killed", func(t *testing.T) {
		db := privateFxA(t, p, "fxa_stopped")
		f := appliertest.New(t, db, 62, fewSessions)
		path, _ := f.Manifest(t, t.TempDir())
		r.WaitCaughtUp(t)
		o := parse(t, db.DSN)
		o.Manifest, o.BatchSize, o.Wait = path, 3, 20*time.Millisecond
		o.Approve = appliertest.Approval(path)
		o.Replicas, o.MaxReplicaLag = []*mysql.Config{replicaCfg}, time.Second
		g := newGate(t, 9)
		o.OnBatch = g.hook
		b := startBackground(o)
		g.await(t, b)
		r.StopReplication(t)
		g.release()
		b.waitLog(t, "throttled", "replication stopped")
		holdsStill(t, b, db, "replication stopped", time.Second)
		r.StartReplication(t)
		b.waitLog(t, "running")
		r.Kill(t)
		b.waitLog(t, "throttled", "replica unreadable") // fail closed
		holdsStill(t, b, db, "replica unreadable", time.Second)
		r.Restart(t)
		r.WaitRunning(t)
		if _, err := b.wait(t); err != nil {
			t.Fatalf("%v\n%s", err, b.log)
		}
		f.Check(t)
	})
}

func hasReason(res *Result, prefix string) bool { return heldFor(res, prefix) > 0 }

// heldFor is the time res reports held for reasons starting with prefix.
func heldFor(res *Result, prefix string) time.Duration {
	var sum time.Duration
	for k, d := range res.Waited {
		if strings.HasPrefix(k, prefix) {
			sum += d
		}
	}
	return sum
}

// sleepers keeps n sessions running SELECT SLEEP on db, raising
// Threads_running, until stop (or the test's end) kills their queries:
// the load lasts as long as the test needs it, however slow the machine.
func sleepers(t *testing.T, db *sql.DB, n int) (stop func()) {
	t.Helper()
	ctx := context.Background()
	var wg sync.WaitGroup
	ids := make([]int64, n)
	for i := range n {
		c, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.QueryRowContext(ctx, "SELECT CONNECTION_ID()").Scan(&ids[i]); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			c.ExecContext(ctx, "SELECT SLEEP(3600)")
		}()
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			for _, id := range ids {
				db.Exec("KILL QUERY ?", id) // SLEEP returns 1 at once
			}
			wg.Wait()
		})
	}
	t.Cleanup(stop)
	return stop
}

// TestLoadHoldsOrStopsApply: on a private server, sessions running SELECT
// SLEEP raise Threads_running past --maxLoad: apply holds until they end.
// Past --criticalLoad for a second, apply stops (an error during the run,
// exit 3) with its checkpoint current, and the rerun ends exact.
func TestLoadHoldsOrStopsApply(t *testing.T) {
	srv := mariadbtest.Start(t)
	load, err := throttle.ParseThresholds("Threads_running=5")
	if err != nil {
		t.Fatal(err)
	}

	t.Run("max load", func(t *testing.T) {
		db := privateFxA(t, srv, "fxa_load")
		f := appliertest.New(t, db, 63, fewSessions)
		path, _ := f.Manifest(t, t.TempDir())
		o := parse(t, db.DSN)
		o.Manifest, o.BatchSize, o.Wait, o.MaxLoad = path, 3, 20*time.Millisecond, load
		o.Approve = appliertest.Approval(path)
		g := newGate(t, 9)
		o.OnBatch = g.hook
		b := startBackground(o)
		g.await(t, b)
		stop := sleepers(t, srv.Open(t, ""), 8)
		g.release()
		b.waitLog(t, "throttled", "Threads_running")
		holdsStill(t, b, db, "Threads_running", time.Second)
		stop()
		if _, err := b.wait(t); err != nil {
			t.Fatalf("%v\n%s", err, b.log)
		}
		f.Check(t)
	})

	t.Run("critical load", func(t *testing.T) {
		db := privateFxA(t, srv, "fxa_critical")
		f := appliertest.New(t, db, 64, fewSessions)
		path, _ := f.Manifest(t, t.TempDir())
		o := parse(t, db.DSN)
		o.Manifest, o.BatchSize, o.Wait, o.CriticalLoad = path, 3, 20*time.Millisecond, load
		o.Approve = appliertest.Approval(path)
		g := newGate(t, 9)
		o.OnBatch = g.hook
		b := startBackground(o)
		g.await(t, b)
		stop := sleepers(t, srv.Open(t, ""), 8)
		g.release()
		res, err := b.wait(t)
		if !errors.Is(err, throttle.ErrCriticalLoad) || IsInit(err) || !strings.Contains(err.Error(), "rerun the same command") {
			t.Fatalf("err = %v, want a critical-load stop during the run\n%s", err, b.log)
		}
		if res.Done < 9 || res.Complete {
			t.Errorf("done %d, complete %v", res.Done, res.Complete)
		}
		stop()
		o.OnBatch = nil
		if _, err := Run(context.Background(), o); err != nil {
			t.Fatal(err)
		}
		f.Check(t)
	})
}

// TestHistoryLengthHoldsApply: a consistent snapshot held open on another
// connection keeps purge from removing what apply deletes, so the history
// list grows past a low --maxHistoryLength: apply holds until the snapshot
// ends and purge brings it down.
func TestHistoryLengthHoldsApply(t *testing.T) {
	srv := mariadbtest.Start(t)
	db := privateFxA(t, srv, "fxa_history")
	f := appliertest.New(t, db, 65, fewSessions)
	path, _ := f.Manifest(t, t.TempDir())
	// Let purge finish with the seeding first, so that only apply's own
	// deletes, kept by the snapshot, fill the history list.
	deadline := time.Now().Add(time.Minute)
	for historyLength(t, db.SQL) > 2 {
		if time.Now().After(deadline) {
			t.Fatalf("history list length still %d after a minute", historyLength(t, db.SQL))
		}
		time.Sleep(100 * time.Millisecond)
	}
	holder, err := db.SQL.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	if _, err := holder.ExecContext(context.Background(), "START TRANSACTION WITH CONSISTENT SNAPSHOT"); err != nil {
		t.Fatal(err)
	}
	var n int
	holder.QueryRowContext(context.Background(), "SELECT COUNT(*) FROM sessionTokens").Scan(&n)
	o := parse(t, db.DSN)
	o.Manifest, o.BatchSize, o.Wait, o.MaxHistoryLength = path, 1, 20*time.Millisecond, 20
	o.Approve = appliertest.Approval(path)
	b := startBackground(o)
	b.waitLog(t, "throttled", "history length")
	holdsStill(t, b, db, "history length", time.Second)
	if _, err := holder.ExecContext(context.Background(), "COMMIT"); err != nil {
		t.Fatal(err)
	}
	res, err := b.wait(t)
	if err != nil {
		t.Fatalf("%v\n%s", err, b.log)
	}
	f.Check(t)
	if !hasReason(res, "history length") {
		t.Errorf("time held for history length not reported: %v", res.Waited)
	}
}

func historyLength(t *testing.T, db *sql.DB) int64 {
	t.Helper()
	var name string
	var n int64
	if err := db.QueryRow("SHOW GLOBAL STATUS LIKE 'Innodb_history_list_length'").Scan(&name, &n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestSlowBatchShrinksTheNext: a row lock held by another connection makes
// a batch take longer than --maxBatchTime; the next batches are halved, then
// grow back once batches are quick again.
func TestSlowBatchShrinksTheNext(t *testing.T) {
	db := dbtest.New(t)
	f := appliertest.New(t, db, 66, fewSessions)
	path, _ := f.Manifest(t, t.TempDir())
	sessions := f.Listed(manifest.StageTokenAge, manifest.TableSessionTokens)
	locker, err := db.SQL.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer locker.Close()
	if _, err := locker.ExecContext(context.Background(), "BEGIN"); err != nil {
		t.Fatal(err)
	}
	if _, err := locker.ExecContext(context.Background(), "SELECT tokenId FROM sessionTokens WHERE tokenId = ? FOR UPDATE", sessions[20].ID); err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(time.Second, func() { locker.ExecContext(context.Background(), "ROLLBACK") })
	o := options(t, db, path)
	o.BatchSize, o.MaxBatchTime = 8, 300*time.Millisecond
	var sizes []int64
	var last int64
	o.OnBatch = func(done int64) { sizes = append(sizes, done-last); last = done }
	var log syncBuf
	o.Logger = logging.New(&log, logging.Text, logging.Options{})
	if _, err := Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	f.Check(t)
	// The slow batch is the one holding sessions[20]; sections end batches
	// early too, so look for 8 -> 4 -> back to 8 within sessions.
	small, backAt8 := -1, false
	for i, n := range sizes {
		if n == 4 && small < 0 && i > 0 && sizes[i-1] == 8 {
			small = i
		}
		if small >= 0 && i > small && n == 8 {
			backAt8 = true
		}
	}
	if small < 0 || !backAt8 {
		t.Errorf("batch sizes %v: want a slow batch of 8 followed by 4, then 8 again\n%s", sizes, log.String())
	}
	if !strings.Contains(log.String(), "batch size") {
		t.Errorf("the size changes were not logged:\n%s", log.String())
	}
}

// TestRunControl: a pause file holds apply while it exists; the control
// socket changes the batch size, pauses and resumes, and answers status; a
// stop file stops it cleanly (no error, "rerun to continue"), and the rerun
// ends exact.
func TestRunControl(t *testing.T) {
	db := dbtest.New(t)
	f := appliertest.New(t, db, 67, fewSessions)
	dir := t.TempDir()
	path, _ := f.Manifest(t, dir)
	pause, stop := filepath.Join(dir, "pause"), filepath.Join(dir, "stop")
	sock, err := os.MkdirTemp("", "pt-sock-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(sock)
	sock = filepath.Join(sock, "apply.sock")
	o := options(t, db, path)
	o.BatchSize, o.Wait, o.MaxBatchTime = 1, 30*time.Millisecond, 0
	o.PauseFile, o.StopFile, o.ControlSocket = pause, stop, sock
	var mu sync.Mutex
	var steps []int64
	var last int64
	o.OnBatch = func(done int64) {
		mu.Lock()
		steps = append(steps, done-last)
		last = done
		mu.Unlock()
	}
	var out syncBuf
	o.Out = &out
	b := startBackground(o)
	waitDone := func(n int64) {
		deadline := time.Now().Add(time.Minute)
		for {
			mu.Lock()
			d := last
			mu.Unlock()
			if d >= n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("apply did not reach row %d\n%s", n, b.log)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitDone(3)
	if err := os.WriteFile(pause, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	b.waitLog(t, "paused")
	holdsStill(t, b, db, "paused", 600*time.Millisecond)
	os.Remove(pause)
	mu.Lock()
	at := last
	mu.Unlock()
	waitDone(at + 2)

	if st, err := os.Stat(sock); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("control socket: %v %v", st, err)
	}
	if reply := socketCommand(t, sock, "status"); !strings.Contains(reply, "rows") || !strings.Contains(reply, "running") {
		t.Errorf("status: %q", reply)
	}
	if reply := socketCommand(t, sock, "batch-size=3"); !strings.HasPrefix(reply, "ok") {
		t.Fatalf("batch-size=3: %q", reply)
	}
	mu.Lock()
	mark := len(steps)
	mu.Unlock()
	waitDone(last + 9)
	mu.Lock()
	threes := 0
	for _, s := range steps[mark:] {
		if s == 3 {
			threes++
		}
	}
	mu.Unlock()
	if threes == 0 {
		t.Errorf("no batch of 3 after batch-size=3: %v", steps[mark:])
	}
	if reply := socketCommand(t, sock, "pause"); !strings.HasPrefix(reply, "ok") {
		t.Fatalf("pause: %q", reply)
	}
	holdsStill(t, b, db, "paused", 600*time.Millisecond)
	if reply := socketCommand(t, sock, "resume"); !strings.HasPrefix(reply, "ok") {
		t.Fatalf("resume: %q", reply)
	}
	mu.Lock()
	at = last
	mu.Unlock()
	waitDone(at + 3)
	if err := os.WriteFile(stop, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	res, err := b.wait(t)
	if err != nil || res.Complete || res.StoppedByRequest == "" || !strings.Contains(out.String(), "rerun the same command to continue") {
		t.Fatalf("stop file: err %v, result %+v\n%s", err, res, out.String())
	}
	for _, want := range []string{"pause", "batch-size 3", "resume"} {
		if !strings.Contains(b.log.String(), want) {
			t.Errorf("the log does not record %q:\n%s", want, b.log)
		}
	}
	if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("control socket left behind: %v", err)
	}
	os.Remove(stop)
	o.OnBatch, o.Out = nil, nil
	if _, err := Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	f.Check(t)
}

// socketCommand sends one line to the control socket and returns the reply.
func socketCommand(t *testing.T, path, cmd string) string {
	t.Helper()
	c, err := netDialUnix(path)
	if err != nil {
		t.Fatalf("dial %s: %v", path, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte(cmd + "\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	n, _ := c.Read(buf)
	return strings.TrimSpace(string(buf[:n]))
}

func netDialUnix(path string) (net.Conn, error) { return net.Dial("unix", path) }
