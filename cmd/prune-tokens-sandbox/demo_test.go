package main

import (
	"bytes"
	"context"
	"database/sql"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"

	"prune-tokens/internal/test/clitest"
	"prune-tokens/internal/test/dbtest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	clitest.Cleanup()
	os.Exit(code)
}

// sandboxBinary builds this command (without -race, as make demo does, so
// the demo's server runs at normal speed even under go test -race).
func sandboxBinary(t *testing.T) string {
	t.Helper()
	return clitest.Build(t, "./cmd/prune-tokens-sandbox")
}

// runDemo runs the demo as `make demo` does, with env added, and returns
// its output; it fails the test unless the demo exits 0.
func runDemo(t *testing.T, env ...string) string {
	t.Helper()
	cmd := exec.Command(sandboxBinary(t), "demo", "--bin", clitest.Binary(t))
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	return out.String()
}

// The README's story, end to end, on the embedded sandbox: the demo itself
// checks every row of the nine tables against the rules (and fails
// otherwise; see TestCheckIdentity); here the test checks that every step was
// told and nothing reached a real server.
func TestDemoOnSandbox(t *testing.T) {
	out := runDemo(t, "DEMO_DSN=")
	for _, want := range []string{
		"$ prune-tokens plan ", "--maxTokenAge 30-days --maxCodeAge 30-days --maxSessions 100",
		"$ prune-tokens inspect ", "--format markdown", "## prune-tokens plan",
		"$ prune-tokens apply ", "--approve ", "^C", "exit code 3", "resuming at row ",
		"6. Check: every row of the nine tables", "Exactly the approved manifest", "Demo finished in ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	for _, m := range regexp.MustCompile(`tcp\(([^)]*)\)`).FindAllStringSubmatch(out, -1) {
		if !strings.HasPrefix(m[1], "127.0.0.1:") || m[1] == "127.0.0.1:3306" {
			t.Errorf("demo used server %s, want only the sandbox on a free loopback port", m[1])
		}
	}
	if t.Failed() {
		t.Log(out)
	}
}

// DEMO_DSN runs the same story on a real server, in a database the demo
// creates and drops.
func TestDemoOnMariaDB(t *testing.T) {
	d := dbtest.New(t) // skips, or fails under CI, when the server is down
	out := runDemo(t, "DEMO_DSN="+dbtest.ServerDSN())
	name := regexp.MustCompile(`creates database (prune_tokens_demo_[0-9a-f]+)`).FindStringSubmatch(out)
	if name == nil || !strings.Contains(out, "Demo finished in ") {
		t.Fatalf("demo on DEMO_DSN did not run its own database:\n%s", out)
	}
	var left sql.NullString
	err := d.SQL.QueryRow("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", name[1]).Scan(&left)
	if err != sql.ErrNoRows {
		t.Errorf("database %s left behind (%v)", name[1], err)
	}
}

// checkIdentity, the demo's verdict, finds each way an apply can differ from
// the rules: a row deleted that the rules keep, a row left that they
// delete, a row changed, a row added; an interrupted run may leave rows the
// rules delete.
func TestCheckIdentity(t *testing.T) {
	sum := func(b byte) [32]byte { return [32]byte{b} }
	snap := func(rows map[string][32]byte) *snapshot {
		return &snapshot{rows: map[string]map[string][32]byte{"sessionTokens": rows}}
	}
	before := snap(map[string][32]byte{"a": sum(1), "b": sum(2), "c": sum(3)})
	gone := map[string]map[string]bool{"sessionTokens": {"a": true}}
	for _, c := range []struct {
		name     string
		after    map[string][32]byte
		complete bool
		want     string
	}{
		{"exact", map[string][32]byte{"b": sum(2), "c": sum(3)}, true, ""},
		{"interrupted before a", map[string][32]byte{"a": sum(1), "b": sum(2), "c": sum(3)}, false, ""},
		{"a left at the end", map[string][32]byte{"a": sum(1), "b": sum(2), "c": sum(3)}, true, "the rules delete it"},
		{"b deleted", map[string][32]byte{"c": sum(3)}, false, "the rules do not delete it"},
		{"c changed", map[string][32]byte{"b": sum(2), "c": sum(9)}, true, "changed"},
		{"d appeared", map[string][32]byte{"b": sum(2), "c": sum(3), "d": sum(4)}, true, "appeared"},
	} {
		got := strings.Join(checkIdentity(before, snap(c.after), gone, c.complete), "; ")
		if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("%s: problems %q, want %q", c.name, got, c.want)
		}
	}
}

// The demo shows a command's stdout and stderr lines in the order the
// command wrote them (a progress line on stderr before the outcome table
// on stdout), not stderr after stdout.
func TestDemoKeepsOutputOrder(t *testing.T) {
	var out bytes.Buffer
	d := &demo{out: &out, bin: "/bin/sh", target: &mysql.Config{}}
	got, code, err := d.prune(context.Background(), "-c", "echo out1; sleep 0.1; echo err1 >&2; sleep 0.1; echo out2")
	if err != nil || code != 0 {
		t.Fatalf("exit %d, %v", code, err)
	}
	if want := "  out1\n  err1\n  out2\n"; !strings.HasSuffix(out.String(), want) || got != "out1\nerr1\nout2\n" {
		t.Errorf("shown:\n%s\nreturned %q; want out1, err1, out2 in that order", out.String(), got)
	}
}
