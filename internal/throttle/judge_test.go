package throttle

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestFmtDur(t *testing.T) {
	for d, want := range map[time.Duration]string{
		3200 * time.Millisecond:    "3.2s",
		time.Second:                "1s",
		250 * time.Millisecond:     "0.25s",
		500 * time.Millisecond:     "0.5s",
		12 * time.Second:           "12s",
		723 * time.Second:          "12m3s",
		0:                          "0s",
		1234567 * time.Microsecond: "1.2s",
	} {
		if got := fmtDur(d); got != want {
			t.Errorf("fmtDur(%v) = %q, want %q", d, got, want)
		}
	}
}

// judged is a Throttler on a pool that is never dialled: judge works on
// readings made up by the test.
func judged(t *testing.T, cfg Config) *Throttler {
	t.Helper()
	db, err := sql.Open("mysql", "nobody@tcp(127.0.0.1:1)/")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	cfg.Primary = db
	if cfg.BatchSize == 0 {
		cfg.BatchSize = 100
	}
	thr, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return thr
}

func TestJudgeShowsEveryReason(t *testing.T) {
	db, _ := sql.Open("mysql", "nobody@tcp(127.0.0.1:1)/")
	defer db.Close()
	load, _ := ParseThresholds("Threads_running=25,Threads_connected=500")
	thr := judged(t, Config{MaxLoad: load, Replicas: []Replica{{DB: db}, {DB: db}, {Name: "east", DB: db}},
		Pause: func() string { return "pause file /run/p exists" }})
	r := &reading{at: time.Now(), history: 10,
		replicas: []replicaReading{
			{name: "replica-1", lag: 100 * time.Millisecond, known: true},
			{name: "replica-2", lag: 3200 * time.Millisecond, known: true},
			{name: "east", stopped: "Slave_SQL_Running=No, Slave_IO_Running=Yes"},
		},
		status: map[string]int64{"threads_running": 31, "threads_connected": 20}}
	v := thr.judge(r)
	st := thr.Status()
	want := "paused: pause file /run/p exists; replica lag 3.2s > 1s (replica-2); replication stopped (east): Slave_SQL_Running=No, Slave_IO_Running=Yes; Threads_running 31 > 25"
	if st.String() != want {
		t.Fatalf("status\n %s\nwant\n %s", st, want)
	}
	if len(v.reasons) != 4 || v.critical != "" {
		t.Fatalf("verdict %+v", v)
	}
	if st.State != Paused || st.Lag != 3200*time.Millisecond || st.LagReplica != "replica-2" {
		t.Fatalf("state %s lag %v (%s), want paused, the worst replica's 3.2s", st.State, st.Lag, st.LagReplica)
	}
	if d := st.Details(); d != "batch 100, lag 3.2s (replica-2), Threads_running 31, Threads_connected 20, history 10" {
		t.Fatalf("details %q", d)
	}

	// Unreadable signals throttle too (fail closed), each with its reason.
	thr = judged(t, Config{MaxLoad: load, Replicas: []Replica{{DB: db}}})
	thr.judge(&reading{at: time.Now(), history: -1,
		replicas:   []replicaReading{{name: "replica-1", err: errors.New("dial tcp 127.0.0.1:4: connect: connection refused")}},
		primaryErr: errors.New("invalid connection")})
	want = "throttled: replica unreadable (replica-1): dial tcp 127.0.0.1:4: connect: connection refused; primary status unreadable: invalid connection"
	if got := thr.Status().String(); got != want {
		t.Fatalf("status\n %s\nwant\n %s", got, want)
	}
	thr.judge(&reading{at: time.Now(), history: 5, status: map[string]int64{"threads_running": 1},
		bad: map[string]string{"threads_connected": "no such status variable"}})
	if got := thr.Status().String(); got != "throttled: Threads_connected: no such status variable" {
		t.Fatalf("unknown variable: %s", got)
	}
	thr.judge(&reading{at: time.Now(), history: 5, status: map[string]int64{"threads_running": 25, "threads_connected": 500}})
	if got := thr.Status(); got.String() != "running" || got.State != Running {
		t.Fatalf("at the limits (not above): %s", got)
	}
}

func TestJudgeHistoryHysteresis(t *testing.T) {
	thr := judged(t, Config{MaxHistoryLength: 1000})
	for i, c := range []struct {
		history int64
		want    string
	}{
		{900, "running"},
		{1000, "running"},
		{1001, "throttled: history length 1001 > 1000"},
		{900, "throttled: history length 900, waiting for < 800 (80% of 1000)"},
		{800, "throttled: history length 800, waiting for < 800 (80% of 1000)"},
		{799, "running"},
		{950, "running"},
		{5000, "throttled: history length 5000 > 1000"},
		{0, "running"},
	} {
		thr.judge(&reading{at: time.Now(), history: c.history})
		if got := thr.Status().String(); got != c.want {
			t.Fatalf("step %d, history %d: %q, want %q", i, c.history, got, c.want)
		}
	}
	if _, err := thr.SetMaxHistoryLength(Off); err != nil {
		t.Fatal(err)
	}
	thr.judge(&reading{at: time.Now(), history: 1 << 40})
	if got := thr.Status().String(); got != "running" {
		t.Fatalf("history check off: %q", got)
	}
}

func TestJudgeCriticalNeedsTwoChecksASecondApart(t *testing.T) {
	crit, _ := ParseThresholds("Threads_running=50")
	thr := judged(t, Config{CriticalLoad: crit})
	t0 := time.Now()
	at := func(ms int, running int64) verdict {
		return thr.judge(&reading{at: t0.Add(time.Duration(ms) * time.Millisecond), history: 1,
			status: map[string]int64{"threads_running": running}})
	}
	if v := at(0, 60); v.critical != "" || len(v.reasons) != 1 || thr.Status().State != Throttled {
		t.Fatalf("first check over the critical limit: %+v, %s; want held, not yet critical", v, thr.Status())
	}
	if v := at(999, 60); v.critical != "" {
		t.Fatalf("critical after 999ms: %s", v.critical)
	}
	v := at(1000, 61)
	if v.critical != "Threads_running 61 > 50, exceeded on checks 1s apart" || thr.Status().State != Critical {
		t.Fatalf("a second apart: %q, %s", v.critical, thr.Status())
	}

	// A dip below the limit starts the streak again.
	thr = judged(t, Config{CriticalLoad: crit})
	at(0, 60)
	at(500, 10)
	if v := at(1200, 60); v.critical != "" {
		t.Fatalf("critical across a dip: %s", v.critical)
	}
	if v := at(2200, 60); v.critical == "" {
		t.Fatal("not critical a second into the new streak")
	}
}

func TestSetLimits(t *testing.T) {
	thr := judged(t, Config{BatchSize: 1000})
	if _, err := thr.SetBatchSize(0); err == nil {
		t.Error("batch size 0 accepted")
	}
	if _, err := thr.SetBatchSize(10001); err == nil {
		t.Error("batch size 10001 accepted")
	}
	if old, err := thr.SetBatchSize(200); err != nil || old != 1000 || thr.BatchSize() != 200 {
		t.Errorf("SetBatchSize(200) = %d, %v; size %d", old, err, thr.BatchSize())
	}
	if old, err := thr.SetMaxReplicaLag(3 * time.Second); err != nil || old != time.Second {
		t.Errorf("SetMaxReplicaLag = %v, %v", old, err)
	}
	if _, err := thr.SetMaxReplicaLag(0); err == nil {
		t.Error("max replica lag 0 accepted")
	}
	if old, err := thr.SetMaxLoad("Threads_running=30"); err != nil || old != "none" {
		t.Errorf("SetMaxLoad = %q, %v", old, err)
	}
	if _, err := thr.SetMaxLoad("Threads_running=x"); err == nil || !strings.Contains(err.Error(), `"x"`) {
		t.Errorf("bad max load: %v", err)
	}
	if old, err := thr.SetCriticalLoad("Threads_running=80"); err != nil || old != "none" {
		t.Errorf("SetCriticalLoad = %q, %v", old, err)
	}
	l := thr.Limits()
	if l.MaxLoad.String() != "Threads_running=30" || l.CriticalLoad.String() != "Threads_running=80" ||
		l.MaxReplicaLag != 3*time.Second || l.BatchSize != 200 || l.MaxHistoryLength != DefaultMaxHistoryLength || l.MaxBatchTime != DefaultMaxBatchTime {
		t.Errorf("limits %+v", l)
	}
	// The new limits judge the next reading.
	thr.judge(&reading{at: time.Now(), history: 1, status: map[string]int64{"threads_running": 31}})
	if got := thr.Status().String(); got != "throttled: Threads_running 31 > 30" {
		t.Errorf("after SetMaxLoad: %s", got)
	}
}

func TestNewRefuses(t *testing.T) {
	db, _ := sql.Open("mysql", "nobody@tcp(127.0.0.1:1)/")
	defer db.Close()
	for name, cfg := range map[string]Config{
		"no batch size":         {Primary: db},
		"no primary":            {BatchSize: 1},
		"bad heartbeat table":   {Primary: db, BatchSize: 1, HeartbeatTable: "hb"},
		"quoted heartbeat":      {Primary: db, BatchSize: 1, HeartbeatTable: "hb.`x`"},
		"two replicas one name": {Primary: db, BatchSize: 1, Replicas: []Replica{{Name: "a", DB: db}, {Name: "a", DB: db}}},
		"replica without db":    {Primary: db, BatchSize: 1, Replicas: []Replica{{Name: "a"}}},
		"bad threshold":         {Primary: db, BatchSize: 1, MaxLoad: Thresholds{{Name: "a b", Limit: 1}}},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// Without primary signals no primary is needed.
	if _, err := New(Config{BatchSize: 1, MaxHistoryLength: Off, Replicas: []Replica{{DB: db}}}); err != nil {
		t.Errorf("replicas only: %v", err)
	}
}

// A primary that cannot be read holds apply, but only for PrimaryPatience:
// then Wait gives up with ErrPrimaryUnreadable and the read error, so that a
// database gone for good ends the run (exit 3, resumable) instead of holding
// it for ever. Without a patience it holds until the context ends.
func TestPrimaryUnreadableGivesUp(t *testing.T) {
	thr := judged(t, Config{PrimaryPatience: 300 * time.Millisecond, CheckEvery: 20 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := thr.Wait(ctx)
	if !errors.Is(err, ErrPrimaryUnreadable) || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("Wait on an unreachable primary with a patience: %v; want ErrPrimaryUnreadable naming the read error", err)
	}
	if st := thr.Status(); len(st.ThrottledFor) == 0 {
		t.Errorf("the time held before giving up is not accounted: %+v", st)
	}

	forever := judged(t, Config{CheckEvery: 20 * time.Millisecond})
	ctx, cancel = context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if err := forever.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait on an unreachable primary without a patience: %v; want it to hold until the context ends", err)
	}
}
