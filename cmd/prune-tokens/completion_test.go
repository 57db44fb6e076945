package main

import (
	"strings"
	"testing"
)

func TestCompletionScripts(t *testing.T) {
	code, out, stderr := run(t, "completion", "bash")
	if code != 0 || stderr != "" {
		t.Fatalf("completion bash: exit %d, stderr %q", code, stderr)
	}
	for _, want := range []string{"complete ", "prune-tokens", completionFlag} {
		if !strings.Contains(out, want) {
			t.Errorf("bash script lacks %q:\n%s", want, out)
		}
	}
	code, out, stderr = run(t, "completion", "zsh")
	if code != 0 || stderr != "" || !strings.HasPrefix(out, "#compdef prune-tokens\n") || !strings.Contains(out, completionFlag) {
		t.Errorf("completion zsh: exit %d, stderr %q, out:\n%s", code, stderr, out)
	}
	for _, args := range [][]string{{"completion", "fish"}, {"completion"}, {"completion", "bash", "zsh"}} {
		code, out, stderr := run(t, args...)
		lines := strings.Split(strings.TrimSpace(stderr), "\n")
		if code != exitInit || out != "" || len(lines) != 1 || !strings.HasPrefix(lines[0], "prune-tokens: completion") {
			t.Errorf("%q: exit %d, out %q, stderr %q", args, code, out, stderr)
		}
	}
}

func TestGenerateBashCompletion(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{nil, "plan\ninspect\napply\nversion\ncompletion\n"},
		{[]string{""}, "plan\ninspect\napply\nversion\ncompletion\n"},
		{[]string{"--vers"}, "--version\n"},
		{[]string{"plan", "--maxSessionsMax"}, "--maxSessionsMaxAccounts\n--maxSessionsMaxDeletions\n"},
		// A positional argument in front must not be moved behind the flag.
		{[]string{"inspect", "x.parquet", "--form"}, "--format\n"},
		{[]string{"inspect", ""}, ""}, // nothing: the shell completes file names
		{[]string{"completion", ""}, "bash\nzsh\n"},
	}
	for _, c := range cases {
		args := append(c.args, completionFlag)
		code, out, stderr := run(t, args...)
		if code != 0 || stderr != "" || out != c.want {
			t.Errorf("%q: exit %d, stderr %q, out %q, want %q", args, code, stderr, out, c.want)
		}
	}
}
