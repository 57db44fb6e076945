package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"

	"prune-tokens/internal/test/clitest"
)

// TestMain removes the binary that subprocess tests build.
func TestMain(m *testing.M) {
	code := m.Run()
	clitest.Cleanup()
	os.Exit(code)
}

func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Main(context.Background(), append([]string{"prune-tokens"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

func TestUsageErrorsExitTwoWithOneLine(t *testing.T) {
	for _, args := range [][]string{
		{"bogus"},
		{},
		{"plan", "--noSuchFlag"},
		{"apply", "--noSuchFlag", "x"},
	} {
		code, _, stderr := run(t, args...)
		if code != exitInit {
			t.Errorf("%q: exit %d, want %d (stderr %q)", args, code, exitInit, stderr)
		}
		lines := strings.Split(strings.TrimSpace(stderr), "\n")
		if len(lines) != 1 || !strings.HasPrefix(lines[0], "prune-tokens: ") {
			t.Errorf("%q: stderr is not one prefixed line: %q", args, stderr)
		}
	}
}

func TestVersionAndHelp(t *testing.T) {
	code, out, _ := run(t, "--version")
	if code != 0 || !strings.Contains(out, appVersion()) {
		t.Errorf("--version: exit %d, out %q", code, out)
	}
	code, out, _ = run(t, "--help")
	if code != 0 || !strings.Contains(out, "plan") || !strings.Contains(out, "apply") || !strings.Contains(out, "Exit codes") {
		t.Errorf("--help: exit %d, out %q", code, out)
	}
}

func TestPermuteArgs(t *testing.T) {
	app := NewApp(&bytes.Buffer{}, &bytes.Buffer{})
	cases := []struct{ in, want []string }{
		{[]string{"p", "inspect", "f.parquet", "--format", "json"}, []string{"p", "inspect", "--format", "json", "f.parquet"}},
		{[]string{"p", "inspect", "--format=json", "f.parquet"}, []string{"p", "inspect", "--format=json", "f.parquet"}},
		{[]string{"p", "inspect", "f.parquet", "--", "--format"}, []string{"p", "inspect", "f.parquet", "--", "--format"}},
		{[]string{"p", "--version"}, []string{"p", "--version"}},
		{[]string{"p", "nosuch", "a", "--b"}, []string{"p", "nosuch", "a", "--b"}},
	}
	for _, c := range cases {
		if got := permuteArgs(app, c.in); !reflect.DeepEqual(got, c.want) {
			t.Errorf("permuteArgs(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestExitCodeTable(t *testing.T) {
	cases := []struct {
		err  error
		want int
	}{
		{nil, 0},
		{errors.New("boom"), 1},
		{initErrorf("bad"), 2},
		{fmt.Errorf("wrapped: %w", initErrorf("bad")), 2},
		{opError(errors.New("failed")), 3},
		{fmt.Errorf("x: %w", context.Canceled), 3},
	}
	for _, c := range cases {
		if got := exitCode(c.err); got != c.want {
			t.Errorf("exitCode(%v) = %d, want %d", c.err, got, c.want)
		}
	}
}
