package main

import (
	"bytes"
	"database/sql"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"prune-tokens/internal/clitest"
	"prune-tokens/internal/dbtest"
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
// checks that exactly the manifest's rows went (and fails otherwise); here
// the test checks that every step was told and nothing reached a real server.
func TestDemoOnSandbox(t *testing.T) {
	out := runDemo(t, "DEMO_DSN=")
	for _, want := range []string{
		"$ prune-tokens plan ", "--maxTokenAge 30-days --maxCodeAge 30-days --maxSessions 100",
		"$ prune-tokens inspect ", "--format markdown", "## prune-tokens plan",
		"$ prune-tokens apply ", "--approve ", "^C", "exit code 3", "resuming at row ",
		"Rows per table", "Demo finished in ",
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
