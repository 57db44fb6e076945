package runctl_test

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"prune-tokens/internal/runctl"
	"prune-tokens/internal/throttle"
)

const patience = 30 * time.Second

// logbook collects what the controller logs.
type logbook struct {
	mu    sync.Mutex
	lines []string
}

func (l *logbook) logf(f string, a ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(f, a...))
}

func (l *logbook) all() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

func (l *logbook) waitFor(t *testing.T, s string) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for !strings.Contains(l.all(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("log never said %q; it said:\n%s", s, l.all())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// shortDir is a temporary directory with a path short enough for a unix
// socket (t.TempDir can be too long).
func shortDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "rc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func start(t *testing.T, o runctl.Options) *runctl.Controller {
	t.Helper()
	c, err := runctl.Start(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func touch(t *testing.T, path string) {
	t.Helper()
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestPauseFile: paused exactly while the file exists, checked at the call;
// the change is logged.
func TestPauseFile(t *testing.T) {
	dir := shortDir(t)
	pause := filepath.Join(dir, "pause")
	var log logbook
	c := start(t, runctl.Options{PauseFile: pause, Logf: log.logf})
	if r := c.PauseReason(); r != "" {
		t.Fatalf("paused without the file: %q", r)
	}
	touch(t, pause)
	if r := c.PauseReason(); r != "pause file "+pause+" exists" {
		t.Fatalf("with the pause file: %q", r)
	}
	if s := c.State(); s != "paused: pause file "+pause+" exists" {
		t.Fatalf("state %q", s)
	}
	log.waitFor(t, "pause file "+pause+" exists: paused before the next batch")
	if err := os.Remove(pause); err != nil {
		t.Fatal(err)
	}
	if r := c.PauseReason(); r != "" {
		t.Fatalf("still paused after the file went: %q", r)
	}
	log.waitFor(t, "pause file "+pause+" removed: resuming")
	if c.StopRequested() {
		t.Fatal("a pause file asked for a stop")
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(pause); !os.IsNotExist(err) {
		t.Fatalf("pause file: %v", err)
	}
}

// TestStopFile: the stop file's appearance is seen at the next check and,
// without one, by the watcher, which ends the run's context with
// ErrStopRequested. A stop file left from before is refused at Start.
func TestStopFile(t *testing.T) {
	dir := shortDir(t)
	stop := filepath.Join(dir, "stop")
	var log logbook
	c := start(t, runctl.Options{StopFile: stop, Logf: log.logf})
	ctx, cancel := c.Context(context.Background())
	defer cancel()
	if c.StopRequested() {
		t.Fatal("stop requested without the file")
	}
	touch(t, stop)
	select {
	case <-ctx.Done():
	case <-time.After(patience):
		t.Fatal("the run's context did not end after the stop file appeared")
	}
	if !errors.Is(context.Cause(ctx), runctl.ErrStopRequested) {
		t.Fatalf("cause %v, want ErrStopRequested", context.Cause(ctx))
	}
	if !c.StopRequested() || c.StopReason() != "stop file "+stop+" appeared" {
		t.Fatalf("StopRequested %v, reason %q", c.StopRequested(), c.StopReason())
	}
	select {
	case <-c.Stopping():
	default:
		t.Fatal("Stopping not closed")
	}
	log.waitFor(t, "stop file "+stop+" appeared: stopping after the current batch")
	c.Close()

	// Left over: refused, and the file left alone.
	_, err := runctl.Start(runctl.Options{StopFile: stop})
	if err == nil || !strings.Contains(err.Error(), "stop file "+stop+" already exists") {
		t.Fatalf("Start with a stop file present: %v", err)
	}
	if _, err := os.Stat(stop); err != nil {
		t.Fatalf("stop file: %v", err)
	}

	// Seen by StopRequested itself, before the watcher's next look.
	os.Remove(stop)
	c = start(t, runctl.Options{StopFile: stop, PollEvery: time.Hour})
	time.Sleep(50 * time.Millisecond) // the watcher's first look is done
	touch(t, stop)
	if !c.StopRequested() {
		t.Fatal("StopRequested did not look at the stop file")
	}

	if _, err := runctl.Start(runctl.Options{PauseFile: stop + "x", StopFile: stop + "x"}); err == nil {
		t.Fatal("the same file as pause and stop file was accepted")
	}
}

// client talks to the control socket.
type client struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func dial(t *testing.T, path string) *client {
	t.Helper()
	conn, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &client{t: t, conn: conn, r: bufio.NewReader(conn)}
}

// do sends one command and returns the one-line reply.
func (c *client) do(cmd string) string {
	c.t.Helper()
	_ = c.conn.SetDeadline(time.Now().Add(patience))
	if _, err := fmt.Fprintln(c.conn, cmd); err != nil {
		c.t.Fatalf("send %q: %v", cmd, err)
	}
	line, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("reply to %q: %v (got %q)", cmd, err, line)
	}
	return strings.TrimSuffix(line, "\n")
}

// offlineThrottler is a real Throttler whose checks need no server: no
// replicas, no load limits, history length off. Its limits are what the
// socket changes (a max-load set on the socket would make it read).
func offlineThrottler(t *testing.T, pause func() string) *throttle.Throttler {
	t.Helper()
	// A pool that is never dialled: with no load limits and the history
	// check off, no check reads the primary.
	db, err := sql.Open("mysql", "nobody@tcp(127.0.0.1:1)/")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	thr, err := throttle.New(throttle.Config{Primary: db, BatchSize: 1000, MaxHistoryLength: throttle.Off, Pause: pause})
	if err != nil {
		t.Fatal(err)
	}
	return thr
}

// TestSocketCommands: every command, its reply, its effect, and the log of
// each accepted change; bad commands get a one-line error and change
// nothing.
func TestSocketCommands(t *testing.T) {
	dir := shortDir(t)
	sock, pause := filepath.Join(dir, "ctl"), filepath.Join(dir, "pause")
	var log logbook
	thr := offlineThrottler(t, nil)
	c := start(t, runctl.Options{Socket: sock, PauseFile: pause, Wait: 500 * time.Millisecond, Limits: thr, Logf: log.logf})
	cl := dial(t, sock)

	steps := []struct {
		cmd, reply string
		check      func() string // "" when the effect is right
	}{
		{"status", "ok: running; wait 500ms", nil},
		{"pause", "ok: pausing before the next batch", func() string { return want(c.PauseReason(), "paused on the control socket") }},
		{"pause", "ok: already paused", nil},
		{"status", "ok: paused: paused on the control socket; wait 500ms", nil},
		{"resume", "ok: resuming", func() string { return want(c.PauseReason(), "") }},
		{"resume", "ok: not paused", nil},
		{"batch-size=250", "ok: batch-size 250 (was 1000)", func() string { return want(thr.BatchSize(), 250) }},
		{"  BATCH-SIZE = 300 ", "ok: batch-size 300 (was 250)", func() string { return want(thr.Limits().BatchSize, 300) }},
		{"batch-size=0", "error: batch size 0 is out of range (1..10000)", func() string { return want(thr.BatchSize(), 300) }},
		{"batch-size=10001", "error: batch size 10001 is out of range (1..10000)", nil},
		{"batch-size=abc", `error: batch-size "abc" is not a whole number`, nil},
		{"batch-size=", `error: batch-size "" is not a whole number`, nil},
		{"wait=2s", "ok: wait 2s (was 500ms)", func() string { return want(c.BatchWait(), 2*time.Second) }},
		{"wait=250", "ok: wait 250ms (was 2s)", func() string { return want(c.BatchWait(), 250*time.Millisecond) }},
		{"wait=-1s", `error: wait: duration "-1s" is negative`, func() string { return want(c.BatchWait(), 250*time.Millisecond) }},
		{"wait=soon", `error: wait: cannot read "soon" as a duration`, nil},
		{"max-replica-lag=3s", "ok: max-replica-lag 3s (was 1s)", func() string { return want(thr.Limits().MaxReplicaLag, 3*time.Second) }},
		{"max-replica-lag=0", "error: max replica lag 0s: want more than 0", func() string { return want(thr.Limits().MaxReplicaLag, 3*time.Second) }},
		{"max-replica-lag=x", `error: max-replica-lag: cannot read "x" as a duration`, nil},
		{"max-load=Threads_running=30,Threads_connected=600", "ok: max-load Threads_running=30,Threads_connected=600 (was none)",
			func() string { return want(thr.Limits().MaxLoad.String(), "Threads_running=30,Threads_connected=600") }},
		{"max-load=Threads_running", `error: max-load "Threads_running": "Threads_running" has no limit`,
			func() string { return want(thr.Limits().MaxLoad.String(), "Threads_running=30,Threads_connected=600") }},
		{"max-load=Threads_running=25,Bad Name=3", `error: max-load "Threads_running=25,Bad Name=3": "Bad Name" is not a status variable name`, nil},
		{"max-load=", "ok: max-load none (was Threads_running=30,Threads_connected=600)", func() string { return want(thr.Limits().MaxLoad.String(), "none") }},
		{"help", "ok: commands: " + runctl.Commands, nil},
		{"", "error: empty command; commands: " + runctl.Commands, nil},
		{"DROP TABLE sessionTokens", `error: unknown command "DROP TABLE sessionTokens"; commands: ` + runctl.Commands, nil},
		{"status=1", `error: unknown command "status=1"; commands: ` + runctl.Commands, nil},
		{"stop", "ok: stopping after the current batch", func() string { return want(c.StopReason(), "stop requested on the control socket") }},
		{"status", "ok: stopping: stop requested on the control socket; wait 250ms", nil},
	}
	for _, s := range steps {
		if got := cl.do(s.cmd); !strings.HasPrefix(got, s.reply) || strings.ContainsAny(got, "\r\n") {
			t.Errorf("%q: reply %q, want %q", s.cmd, got, s.reply)
		}
		if s.check != nil {
			if msg := s.check(); msg != "" {
				t.Errorf("%q: %s", s.cmd, msg)
			}
		}
	}
	if !c.StopRequested() {
		t.Error("stop did not request a stop")
	}

	// Resume on the socket does not override the pause file.
	touch(t, pause)
	if got := cl.do("resume"); !strings.Contains(got, "pause file "+pause+" still exists") {
		t.Errorf("resume with the pause file: %q", got)
	}
	if c.PauseReason() == "" {
		t.Error("resume on the socket lifted the pause file's pause")
	}

	// Accepted changes are logged, one line each; refused ones are not.
	wantLog := []string{
		"control socket: pause",
		"control socket: resume",
		"control socket: batch-size 250 (was 1000)",
		"control socket: batch-size 300 (was 250)",
		"control socket: wait 2s (was 500ms)",
		"control socket: wait 250ms (was 2s)",
		"control socket: max-replica-lag 3s (was 1s)",
		"control socket: max-load Threads_running=30,Threads_connected=600 (was none)",
		"control socket: max-load none (was Threads_running=30,Threads_connected=600)",
		"stop requested on the control socket: stopping after the current batch",
	}
	var socketLines []string
	for _, l := range strings.Split(log.all(), "\n") {
		if !strings.HasPrefix(l, "pause file") {
			socketLines = append(socketLines, l)
		}
	}
	if got := strings.Join(socketLines, "\n"); got != strings.Join(wantLog, "\n") {
		t.Errorf("log:\n%s\nwant:\n%s", got, strings.Join(wantLog, "\n"))
	}
}

func want[T comparable](got, w T) string {
	if got != w {
		return fmt.Sprintf("got %v, want %v", got, w)
	}
	return ""
}

// TestSocketStatusAndLimits: the status command answers with the caller's
// status line; without limits to change, those commands are refused.
func TestSocketStatusAndLimits(t *testing.T) {
	sock := filepath.Join(shortDir(t), "ctl")
	start(t, runctl.Options{Socket: sock, Status: func() string {
		return "throttled: replica lag 3.2s > 1s (replica-2)\n; batch 500"
	}})
	cl := dial(t, sock)
	if got := cl.do("status"); got != "ok: throttled: replica lag 3.2s > 1s (replica-2) ; batch 500" {
		t.Errorf("status: %q", got)
	}
	for _, cmd := range []string{"batch-size=5", "max-replica-lag=2s", "max-load=Threads_running=5"} {
		if got := cl.do(cmd); !strings.HasPrefix(got, "error: ") || !strings.Contains(got, "cannot be changed in this run") {
			t.Errorf("%s without limits: %q", cmd, got)
		}
	}
	cl.do("stop")
	if got := cl.do("status"); got != "ok: stopping: stop requested on the control socket; throttled: replica lag 3.2s > 1s (replica-2) ; batch 500" {
		t.Errorf("status when stopping: %q", got)
	}
}

// TestSocketFile: the socket is created with mode 0600, serves several
// clients at once, refuses a line that is too long, and is removed on
// Close. A live socket at the path is refused, a stale one replaced, and
// anything else left alone.
func TestSocketFile(t *testing.T) {
	dir := shortDir(t)
	sock := filepath.Join(dir, "ctl")
	var log logbook
	c := start(t, runctl.Options{Socket: sock, Logf: log.logf})
	fi, err := os.Lstat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket file mode %v, want a socket with 0600", fi.Mode())
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("directory holds %d entries, want only the socket (no temporary left)", len(entries))
	}

	// Two clients at once, several commands each.
	a, b := dial(t, sock), dial(t, sock)
	for i := range 3 {
		if got := a.do(fmt.Sprintf("wait=%dms", i+1)); !strings.HasPrefix(got, "ok: ") {
			t.Fatalf("client a: %q", got)
		}
		if got := b.do("status"); !strings.HasPrefix(got, "ok: running") {
			t.Fatalf("client b: %q", got)
		}
	}
	long := dial(t, sock)
	_ = long.conn.SetDeadline(time.Now().Add(patience))
	fmt.Fprintln(long.conn, "max-load="+strings.Repeat("x", 5000))
	if line, _ := long.r.ReadString('\n'); line != "error: command longer than 4096 bytes\n" {
		t.Fatalf("long line: %q", line)
	}
	if _, err := long.r.ReadString('\n'); err == nil {
		t.Fatal("connection still open after a line that is too long")
	}

	// A second run on the same path is refused while this one listens.
	_, err = runctl.Start(runctl.Options{Socket: sock})
	if err == nil || !strings.Contains(err.Error(), "is live") {
		t.Fatalf("second Start on a live socket: %v", err)
	}
	if got := a.do("status"); !strings.HasPrefix(got, "ok: ") {
		t.Fatalf("the first run's socket broke: %q", got)
	}

	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Fatalf("socket file after Close: %v", err)
	}
	if _, err := a.r.ReadString('\n'); err == nil {
		t.Fatal("client connection open after Close")
	}

	// A stale socket (its process killed) is replaced, and said so.
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close()
	start(t, runctl.Options{Socket: sock, Logf: log.logf})
	if got := dial(t, sock).do("status"); !strings.HasPrefix(got, "ok: running") {
		t.Fatalf("after replacing the stale socket: %q", got)
	}
	log.waitFor(t, "control socket "+sock+": removed a stale socket nobody listened on")

	// A regular file or a directory is never replaced.
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := runctl.Start(runctl.Options{Socket: file}); err == nil || !strings.Contains(err.Error(), "a regular file is there, not a socket") {
		t.Fatalf("Start on a regular file: %v", err)
	}
	if b, _ := os.ReadFile(file); string(b) != "keep" {
		t.Fatalf("regular file changed: %q", b)
	}
	if _, err := runctl.Start(runctl.Options{Socket: dir}); err == nil || !strings.Contains(err.Error(), "a directory is there") {
		t.Fatalf("Start on a directory: %v", err)
	}
	if _, err := runctl.Start(runctl.Options{Socket: filepath.Join(dir, "no", "such", "dir", "ctl")}); err == nil {
		t.Fatal("Start in a missing directory succeeded")
	}
	long2 := filepath.Join(dir, strings.Repeat("d", 120))
	if _, err := runctl.Start(runctl.Options{Socket: long2}); err == nil || !strings.Contains(err.Error(), "path too long") {
		t.Fatalf("Start with a long path: %v", err)
	}
}

// TestSteersAThrottledLoop wires run control to a throttler as the apply
// loop will: a pause on the socket or by file holds the batches (and shows
// in the throttler's status), resume lets them run, and a stop ends a Wait
// that is held.
func TestSteersAThrottledLoop(t *testing.T) {
	dir := shortDir(t)
	sock, pause, stop := filepath.Join(dir, "ctl"), filepath.Join(dir, "pause"), filepath.Join(dir, "stop")
	var ctl *runctl.Controller
	thr := offlineThrottler(t, func() string { return ctl.PauseReason() })
	ctl = start(t, runctl.Options{Socket: sock, PauseFile: pause, StopFile: stop, Limits: thr,
		Status: func() string { st := thr.Status(); return st.String() + "; " + st.Details() }})
	runCtx, cancel := ctl.Context(context.Background())
	defer cancel()

	var batches, lastSize atomic.Int64
	done := make(chan error, 1)
	go func() {
		for {
			if ctl.StopRequested() {
				done <- nil
				return
			}
			if err := thr.Wait(runCtx); err != nil {
				done <- err
				return
			}
			lastSize.Store(int64(thr.BatchSize()))
			batches.Add(1)
			time.Sleep(5 * time.Millisecond)
		}
	}()
	grows := func(what string) {
		t.Helper()
		n := batches.Load()
		deadline := time.Now().Add(patience)
		for batches.Load() == n {
			if time.Now().After(deadline) {
				t.Fatalf("%s: no batch ran", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	held := func(what string) {
		t.Helper()
		deadline := time.Now().Add(patience)
		for !strings.HasPrefix(thr.Status().String(), "paused") {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not paused: %s", what, thr.Status())
			}
			time.Sleep(10 * time.Millisecond)
		}
		n := batches.Load()
		time.Sleep(time.Second)
		if got := batches.Load(); got != n {
			t.Fatalf("%s: %d batches ran while paused", what, got-n)
		}
	}
	cl := dial(t, sock)
	grows("start")
	if got := cl.do("batch-size=7"); got != "ok: batch-size 7 (was 1000)" {
		t.Fatalf("batch-size: %q", got)
	}
	cl.do("pause")
	held("socket pause")
	if got := cl.do("status"); got != "ok: paused: paused on the control socket; batch 7" {
		t.Fatalf("status while paused: %q", got)
	}
	cl.do("resume")
	grows("socket resume")
	if n := lastSize.Load(); n != 7 {
		t.Fatalf("a batch after batch-size=7 had %d rows", n)
	}

	touch(t, pause)
	held("pause file")
	os.Remove(pause)
	grows("pause file removed")

	// A stop while held: Wait ends at once, not when the pause ends.
	cl.do("pause")
	held("paused before stop")
	touch(t, stop)
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) || !errors.Is(context.Cause(runCtx), runctl.ErrStopRequested) {
			t.Fatalf("held Wait ended with %v (cause %v), want the stop", err, context.Cause(runCtx))
		}
	case <-time.After(patience):
		t.Fatal("a stop file did not end a paused Wait")
	}
	if !ctl.StopRequested() || !strings.Contains(ctl.StopReason(), "stop file") {
		t.Fatalf("stop reason %q", ctl.StopReason())
	}
	for _, rt := range thr.Status().ThrottledFor {
		if rt.Reason == "paused" && rt.Time >= 3*time.Second {
			return
		}
	}
	t.Fatalf("time paused not accounted: %s", thr.Status().Spent())
}
