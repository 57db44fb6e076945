package main

import (
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestVersionCommand(t *testing.T) {
	old := version
	version = "v1.2.3-test"
	t.Cleanup(func() { version = old })
	for _, args := range [][]string{{"version"}, {"--version"}} {
		code, out, stderr := run(t, args...)
		if code != 0 || stderr != "" {
			t.Fatalf("%q: exit %d, stderr %q", args, code, stderr)
		}
		want := "prune-tokens v1.2.3-test (" + runtime.Version() + ", " + runtime.GOOS + "/" + runtime.GOARCH
		if !strings.HasPrefix(out, want) || strings.Count(out, "\n") != 1 {
			t.Errorf("%q: out %q, want one line starting %q", args, out, want)
		}
	}
	code, _, stderr := run(t, "version", "extra")
	if code != exitInit || !strings.HasPrefix(stderr, "prune-tokens: version takes no arguments") {
		t.Errorf("version extra: exit %d, stderr %q", code, stderr)
	}
}

func TestVersionFromBuildInfo(t *testing.T) {
	platform := runtime.GOOS + "/" + runtime.GOARCH
	vcs := []debug.BuildSetting{
		{Key: "vcs", Value: "git"},
		{Key: "vcs.revision", Value: "129ee3ee747d922ce09b42540e7daa7cbcd3012d"},
		{Key: "vcs.time", Value: "2026-12-04T21:01:49Z"},
		{Key: "vcs.modified", Value: "true"},
	}
	cases := []struct {
		name, ld string
		bi       *debug.BuildInfo
		want     string
	}{
		{"no build info", "dev", nil, "prune-tokens dev (" + runtime.Version() + ", " + platform + ")"},
		{"ldflags win", "v1.0.0", &debug.BuildInfo{Main: debug.Module{Version: "v0.9.0"}},
			"prune-tokens v1.0.0 (" + runtime.Version() + ", " + platform + ")"},
		{"module version", "dev", &debug.BuildInfo{Main: debug.Module{Version: "v0.9.0"}},
			"prune-tokens v0.9.0 (" + runtime.Version() + ", " + platform + ")"},
		{"devel is no version", "", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}},
			"prune-tokens dev (" + runtime.Version() + ", " + platform + ")"},
		{"vcs stamp", "dev", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs},
			"prune-tokens dev (" + runtime.Version() + ", " + platform + ", commit 129ee3ee747d 2026-12-04T21:01:49Z, modified)"},
		{"clean vcs stamp", "abc", &debug.BuildInfo{Settings: vcs[:3]},
			"prune-tokens abc (" + runtime.Version() + ", " + platform + ", commit 129ee3ee747d 2026-12-04T21:01:49Z)"},
	}
	for _, c := range cases {
		if got := newBuildInfo(c.ld, c.bi).String(); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}

func TestUnknownCommandListsCommands(t *testing.T) {
	code, _, stderr := run(t, "bogus")
	want := `prune-tokens: unknown command "bogus" (commands: plan, inspect, apply, version, completion)`
	if code != exitInit || strings.TrimSpace(stderr) != want {
		t.Errorf("exit %d, stderr %q, want %q", code, stderr, want)
	}
}
