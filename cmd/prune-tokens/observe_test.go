package main

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"prune-tokens/internal/logging"
	"prune-tokens/internal/test/appliertest"
	"prune-tokens/internal/test/dbtest"
	"prune-tokens/manifest"
)

// statsdListener is a real StatsD server: a UDP socket collecting datagrams.
type statsdListener struct {
	conn *net.UDPConn
	got  chan string
}

func listenStatsD(t *testing.T) *statsdListener {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	l := &statsdListener{conn: conn, got: make(chan string, 10000)}
	t.Cleanup(func() { conn.Close() })
	go func() {
		buf := make([]byte, 65536)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			for _, line := range strings.Split(strings.TrimSpace(string(buf[:n])), "\n") {
				l.got <- line
			}
		}
	}()
	return l
}

func (l *statsdListener) addr() string { return l.conn.LocalAddr().String() }

// until collects datagrams until one equal to last arrives.
func (l *statsdListener) until(t *testing.T, last string) []string {
	t.Helper()
	var out []string
	deadline := time.After(10 * time.Second)
	for {
		select {
		case m := <-l.got:
			out = append(out, m)
			if m == last {
				return out
			}
		case <-deadline:
			t.Fatalf("no %q among %d datagrams: %q", last, len(out), out)
		}
	}
}

// sum adds the values of a counter or gauge name of type typ ("c", "g").
func sum(metrics []string, name, typ string) (total int64, seen int) {
	for _, m := range metrics {
		n, rest, ok := strings.Cut(m, ":")
		if !ok || n != name {
			continue
		}
		v, tp, _ := strings.Cut(rest, "|")
		if tp != typ {
			continue
		}
		x, _ := strconv.ParseInt(v, 10, 64)
		total += x
		seen++
	}
	return total, seen
}

// TestApplyStatsDUnderOldNames: a dashboard built on the old tool's metrics
// sees the same names with apply's counts; the new ones come along.
func TestApplyStatsDUnderOldNames(t *testing.T) {
	db := dbtest.New(t)
	f := appliertest.New(t, db, 41, appliertest.Small)
	path, _ := f.Manifest(t, t.TempDir())
	l := listenStatsD(t)
	code, stdout, stderr := run(t, applyArgs(db, path, "--batchSize", "4", "--statsd", l.addr())...)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	got := l.until(t, "fxa-auth-server.prune-tokens.end:1|c")
	want := map[string]int64{
		"fxa-auth-server.prune-tokens.start":                                   1,
		"fxa-auth-server.prune-tokens.complete.session-tokens-deleted":         int64(len(f.Listed(manifest.StageTokenAge, manifest.TableSessionTokens))),
		"fxa-auth-server.prune-tokens.complete.account-reset-tokens-deleted":   int64(len(f.Listed(manifest.StageTokenAge, manifest.TableAccountResetTokens))),
		"fxa-auth-server.prune-tokens.complete.password-forgot-tokens-deleted": int64(len(f.Listed(manifest.StageTokenAge, manifest.TablePasswordForgotTokens))),
		"fxa-auth-server.prune-tokens.complete.password-change-tokens-deleted": int64(len(f.Listed(manifest.StageTokenAge, manifest.TablePasswordChangeTokens))),
		"fxa-auth-server.prune-tokens.complete.unblock-codes-deleted":          int64(len(f.Listed(manifest.StageCodeAge, manifest.TableUnblockCodes))),
		"fxa-auth-server.prune-tokens.complete.sign-in-codes-deleted":          int64(len(f.Listed(manifest.StageCodeAge, manifest.TableSigninCodes))),
		"fxa-auth-server.limit-sessions.complete.total-deletions":              int64(len(f.Listed(manifest.StageMaxSessions, manifest.TableSessionTokens))),
	}
	for name, n := range want {
		if got, _ := sum(got, name, "c"); got != n || n == 0 {
			t.Errorf("%s = %d, want %d", name, got, n)
		}
	}
	if _, seen := sum(got, "fxa-auth-server.limit-sessions.start", "c"); seen == 0 {
		t.Error("no limit-sessions.start for the max-sessions batches")
	}
	if n, _ := sum(got, "fxa-auth-server.prune-tokens.error", "c"); n != 0 {
		t.Errorf("prune-tokens.error sent for a successful run")
	}
	var durations, lastRemaining int
	for _, m := range got {
		if strings.HasPrefix(m, "fxa-auth-server.prune-tokens.batch.duration:") && strings.HasSuffix(m, "|ms") {
			durations++
		}
		if v, ok := strings.CutPrefix(m, "fxa-auth-server.prune-tokens.rows-remaining:"); ok {
			lastRemaining, _ = strconv.Atoi(strings.TrimSuffix(v, "|g"))
		}
	}
	if durations == 0 || lastRemaining != 0 {
		t.Errorf("batch.duration timers %d, last rows-remaining %d; want timers and 0 left", durations, lastRemaining)
	}

	// A run that cannot start is an error on the dashboard too.
	code, _, _ = run(t, applyArgs(db, filepath.Join(t.TempDir(), "missing.parquet"), "--statsd", l.addr(), "--statsdPrefix", "")...)
	if code != exitInit {
		t.Fatalf("missing manifest: exit %d", code)
	}
	l.until(t, "prune-tokens.error:1|c")
}

// TestPlanStatsDFindLargeAccounts: plan reports the max-sessions search under
// the old tool's find-large-accounts names.
func TestPlanStatsDFindLargeAccounts(t *testing.T) {
	db := dbtest.New(t)
	seedPlanDB(t, db)
	l := listenStatsD(t)
	out := filepath.Join(t.TempDir(), "p.parquet")
	if code, stdout, stderr := run(t, append(planFlags(db.DSN, out), "--statsd", l.addr())...); code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	// The one account over 10 sessions.
	got := l.until(t, "fxa-auth-server.find-large-accounts.complete.total-accounts:1|c")
	for _, name := range []string{"fxa-auth-server.find-large-accounts.start", "fxa-auth-server.find-large-accounts.end"} {
		if n, _ := sum(got, name, "c"); n != 1 {
			t.Errorf("%s = %d: %q", name, n, got)
		}
	}
}

// jsonLines parses every stderr line as one JSON object with time, level
// and msg.
func jsonLines(t *testing.T, stderr string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(stderr), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("stderr line is not JSON: %q (%v)", line, err)
		}
		for _, k := range []string{"time", "level", "msg"} {
			if _, ok := m[k]; !ok {
				t.Errorf("JSON line lacks %q: %q", k, line)
			}
		}
		out = append(out, m)
	}
	return out
}

// TestLogFormatJSON: with --logFormat json every line on stderr is one JSON
// object, the run's start and finish come with fields, and the closing
// error of a failed command is JSON too.
func TestLogFormatJSON(t *testing.T) {
	db := dbtest.New(t)
	f := appliertest.New(t, db, 42, appliertest.Small)
	path, _ := f.Manifest(t, t.TempDir())
	code, stdout, stderr := run(t, applyArgs(db, path, "--batchSize", "5", "--logFormat", "json")...)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	lines := jsonLines(t, stderr)
	var finished map[string]any
	for _, l := range lines {
		if l["msg"] == "apply finished" {
			finished = l
		}
	}
	if finished == nil || finished["rows"] != float64(len(f.Rows)) || finished["complete"] != true || finished["deleted"] != float64(len(f.Rows)) {
		t.Errorf("no finish record with the counts: %v", lines)
	}
	if !strings.Contains(stdout, "Outcome") {
		t.Errorf("stdout keeps the outcome table:\n%s", stdout)
	}

	code, _, stderr = run(t, "apply", "--logFormat=json", "--dsn", db.DSN, "--manifest", path, "--batchSize", "lots")
	lines = jsonLines(t, stderr)
	last := lines[len(lines)-1]
	if code != exitInit || last["level"] != "ERROR" || !strings.Contains(last["msg"].(string), "--batchSize") || last["exit_code"] != float64(exitInit) {
		t.Errorf("bad flag with --logFormat json: exit %d, %v", code, last)
	}
	code, _, stderr = run(t, "inspect", "--logFormat", "json", filepath.Join(t.TempDir(), "none.parquet"))
	if lines = jsonLines(t, stderr); code != exitInit || lines[len(lines)-1]["level"] != "ERROR" {
		t.Errorf("inspect error with --logFormat json: exit %d, %v", code, lines)
	}
	code, _, stderr = run(t, "plan", "--logFormat", "yaml", "--out", "x")
	if line := oneErrorLine(t, stderr); code != exitInit || !strings.Contains(line, "--logFormat") {
		t.Errorf("--logFormat yaml: exit %d, %q", code, line)
	}
}

// report reads an apply --report file.
type reportFile struct {
	State    string `json:"state"`
	ExitCode *int   `json:"exit_code"`
	Error    string `json:"error"`
	Manifest string `json:"manifest"`
	Rows     *struct {
		Total, Done, Remaining int64
	} `json:"rows"`
	Sections []struct {
		Stage, Table                      string
		Planned, Deleted, Remaining       int64
		Gone                              int64 `json:"already_gone"`
		Skipped                           int64 `json:"skipped_by_guard"`
		UnverifiedDeleted, DevicesDeleted int64
	} `json:"sections"`
	Throttled map[string]float64 `json:"throttled_seconds"`
	StartedAt string             `json:"started_at"`
	EndedAt   string             `json:"ended_at"`
}

func readReport(t *testing.T, path string) reportFile {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var r reportFile
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("report is not JSON: %v\n%s", err, b)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("report mode %v", st.Mode().Perm())
	}
	return r
}

// TestApplyReport: --report is written whole on every exit, saying how apply
// ended: refused, incomplete (--maxRuntime), interrupted, complete.
func TestApplyReport(t *testing.T) {
	db := dbtest.New(t)
	f := appliertest.New(t, db, 43, appliertest.Small)
	dir := t.TempDir()
	path, sum := f.Manifest(t, dir)
	rep := filepath.Join(dir, "report.json")
	before := db.Checksums(t)

	code, _, _ := run(t, applyArgs(db, path, "--approve", strings.Repeat("0", 64), "--report", rep)...)
	r := readReport(t, rep)
	if code != exitInit || r.State != "refused" || r.ExitCode == nil || *r.ExitCode != exitInit || !strings.Contains(r.Error, "not the approved") {
		t.Errorf("refused: exit %d, report %+v", code, r)
	}
	code, _, stderr := run(t, applyArgs(db, path, "--report", filepath.Join(dir, "no-such-dir", "r.json"))...)
	if line := oneErrorLine(t, stderr); code != exitInit || !strings.Contains(line, "--report") {
		t.Errorf("unwritable report: exit %d, %q", code, line)
	}
	if !sameChecksums(before, db.Checksums(t)) {
		t.Fatal("a refused apply deleted rows")
	}

	code, _, _ = run(t, applyArgs(db, path, "--approve", sum, "--maxRuntime", "1ms", "--report", rep)...)
	r = readReport(t, rep)
	if code != 0 || r.State != "incomplete" || r.Rows == nil || r.Rows.Remaining == 0 || r.EndedAt == "" {
		t.Errorf("--maxRuntime: exit %d, report %+v", code, r)
	}

	p := startApply(t, db, path, "--batchSize", "1", "--wait", "50ms", "--report", rep)
	p.WaitFor(t, "the running report", func() bool {
		b, _ := os.ReadFile(rep)
		return strings.Contains(string(b), `"state": "running"`) && !strings.Contains(string(b), `"exit_code": 0`)
	})
	time.Sleep(200 * time.Millisecond)
	if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	p.Wait(t)
	r = readReport(t, rep)
	if p.Code != exitOperation || r.State != "interrupted" || *r.ExitCode != exitOperation {
		t.Errorf("SIGTERM: exit %d, report %+v", p.Code, r)
	}

	code, _, _ = run(t, applyArgs(db, path, "--approve", sum, "--report", rep, "--wait", "1ms")...)
	r = readReport(t, rep)
	if code != 0 || r.State != "complete" || r.Rows.Remaining != 0 || r.Rows.Done != int64(len(f.Rows)) || len(r.Sections) != 7 {
		t.Fatalf("complete: exit %d, report %+v", code, r)
	}
	var deleted, planned int64
	for _, s := range r.Sections {
		planned += s.Planned
		deleted += s.Deleted
		if s.Deleted+s.Gone+s.Skipped+s.Remaining != s.Planned {
			t.Errorf("section %s/%s does not add up: %+v", s.Stage, s.Table, s)
		}
	}
	if planned != int64(len(f.Rows)) || deleted != planned || r.Throttled["wait"] <= 0 || r.Manifest != path {
		t.Errorf("complete report: planned %d deleted %d of %d, waited %v", planned, deleted, len(f.Rows), r.Throttled)
	}
	f.Check(t)
}

// TestFinalErrorLineRedacted: the line that ends a failed command masks a
// registered password even where it is not DSN-shaped (a server or driver
// can quote it back), in text and in JSON.
func TestFinalErrorLineRedacted(t *testing.T) {
	const password = "Tr0ub4dor-and-3"
	secrets := &logging.Secrets{}
	secrets.Add(password)
	err := initErrorf("connect: server said: bad value %q for option", password)
	for _, f := range []logging.Format{logging.Text, logging.JSON} {
		var out strings.Builder
		printError(&out, f, secrets, err, exitCode(err))
		if strings.Contains(out.String(), password) {
			t.Errorf("%s: password in the final line: %q", f, out.String())
		}
		if !strings.Contains(out.String(), "bad value") || !strings.Contains(out.String(), "xxxxx") {
			t.Errorf("%s: final line lost its message or mask: %q", f, out.String())
		}
	}
}
