package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"prune-tokens/internal/test/appliertest"
	"prune-tokens/internal/test/dbtest"
)

// TestApplyThrottleFlags: each bad throttling or run-control flag is one
// line naming it, exit 2, nothing deleted.
func TestApplyThrottleFlags(t *testing.T) {
	db := dbtest.New(t)
	f := appliertest.New(t, db, 71, appliertest.Small)
	dir := t.TempDir()
	path, _ := f.Manifest(t, dir)
	stop := filepath.Join(dir, "stop")
	if err := os.WriteFile(stop, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	before := db.Checksums(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--maxLoad", "Threads_running"}, "--maxLoad"},
		{[]string{"--maxLoad", "Threads_running=lots"}, "--maxLoad"},
		{[]string{"--criticalLoad", "Threads_running=-1"}, "--criticalLoad"},
		{[]string{"--maxReplicaLag", "0"}, "--maxReplicaLag"},
		{[]string{"--maxReplicaLag", "soon"}, "--maxReplicaLag"},
		{[]string{"--lockWait", "0"}, "--lockWait"},
		{[]string{"--lockWait", "a while"}, "--lockWait"},
		{[]string{"--maxHistoryLength", "-5"}, "--maxHistoryLength"},
		{[]string{"--maxBatchTime", "fast"}, "--maxBatchTime"},
		{[]string{"--heartbeatTable", "db.hb"}, "--heartbeatTable"},
		{[]string{"--replica", "user:pw@nowhere"}, "--replica"},
		{[]string{"--pauseFile", "x", "--stopFile", "x"}, "same file"},
		{[]string{"--stopFile", stop}, "already exists"},
		{[]string{"--replica", "root@tcp(127.0.0.1:1)/", "--maxReplicaLag", "1s"}, "127.0.0.1:1"},
		// A comma in the password: one replica, unreachable, not two bad DSNs.
		{[]string{"--replica", "root:pa,ss@tcp(127.0.0.1:1)/", "--maxReplicaLag", "1s"}, "replica 127.0.0.1:1/: connect"},
	} {
		code, _, stderr := run(t, applyArgs(db, path, c.args...)...)
		line := oneErrorLine(t, stderr)
		if code != exitInit || !strings.Contains(line, c.want) {
			t.Errorf("%q: exit %d, %q; want exit 2 naming %q", c.args, code, line, c.want)
		}
	}
	if !sameChecksums(before, db.Checksums(t)) {
		t.Fatal("a refused apply deleted rows")
	}
}

// TestApplyReplicaPrivilegesPreflight: watching a replica needs a monitoring
// privilege; without it apply is refused before its first batch, naming
// the GRANT, and deletes nothing.
func TestApplyReplicaPrivilegesPreflight(t *testing.T) {
	db := dbtest.New(t)
	f := appliertest.New(t, db, 72, appliertest.Small)
	path, _ := f.Manifest(t, t.TempDir())
	replicaDSN, _ := userWithPassword(t, db) // SELECT only
	before := db.Checksums(t)
	code, stdout, stderr := run(t, applyArgs(db, path, "--replica", replicaDSN)...)
	line := oneErrorLine(t, stderr)
	if code != exitInit || !strings.Contains(line, "SLAVE MONITOR") || !strings.Contains(line, "GRANT") {
		t.Errorf("exit %d, %q\n%s", code, line, stdout)
	}
	if !sameChecksums(before, db.Checksums(t)) {
		t.Fatal("apply deleted rows although its preflight failed")
	}
}

// TestApplyStopFileCLI: the stop file makes apply stop cleanly, exit 0 and
// "rerun the same command to continue"; the rerun finishes exactly.
func TestApplyStopFileCLI(t *testing.T) {
	db := dbtest.New(t)
	f := appliertest.New(t, db, 73, appliertest.Small)
	dir := t.TempDir()
	path, _ := f.Manifest(t, dir)
	stop := filepath.Join(dir, "stop")
	p := startApply(t, db, path, "--batchSize", "1", "--wait", "30ms", "--stopFile", stop)
	total := db.Count(t, "sessionTokens")
	p.WaitFor(t, "the first deletes", func() bool { return db.Count(t, "sessionTokens") < total })
	if err := os.WriteFile(stop, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if p.Wait(t).Code != exitOK || !strings.Contains(p.Stdout.String(), "incomplete: stop requested") ||
		!strings.Contains(p.Stdout.String(), "rerun the same command to continue") {
		t.Fatalf("stop file: %s", p)
	}
	for _, want := range []string{"throttle    ", "history length ≤ 1000000", "control     stops when " + stop} {
		if !strings.Contains(p.Stdout.String(), want) {
			t.Errorf("header lacks %q:\n%s", want, p.Stdout)
		}
	}
	os.Remove(stop)
	if code, stdout, stderr := run(t, applyArgs(db, path, "--stopFile", stop)...); code != 0 || !strings.Contains(stdout, "resuming at row") {
		t.Fatalf("rerun: exit %d\n%s\n%s", code, stdout, stderr)
	}
	f.Check(t)
}
