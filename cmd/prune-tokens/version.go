package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/urfave/cli/v2"
)

func init() {
	// --version prints the same line as the version command. (cli's
	// VersionPrinter is a package variable: set once here, not per App.)
	cli.VersionPrinter = func(c *cli.Context) {
		fmt.Fprintln(c.App.Writer, versionLine())
	}
}

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print the version, VCS revision and time, and Go version of this binary",
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return initErrorf("version takes no arguments, got %d", c.NArg())
			}
			_, err := fmt.Fprintln(c.App.Writer, versionLine())
			return err
		},
	}
}

// buildInfo is what identifies a binary: the version it was built as, the
// commit it was built from, and the toolchain and platform.
type buildInfo struct {
	version   string // main.version, else the module version, else "dev"
	goVersion string
	platform  string // GOOS/GOARCH
	revision  string // vcs.revision, empty if the build recorded none
	time      string // vcs.time (the commit's time)
	modified  bool   // vcs.modified: the work tree had uncommitted changes
}

// appVersion is the version alone, for cli.App.Version.
func appVersion() string { return currentBuildInfo().version }

// versionLine is the line `prune-tokens version` prints, e.g.
// "prune-tokens 129ee3e (go1.26.8, linux/amd64, commit 129ee3e0a1b2 2026-12-04T20:59:00Z, modified)".
func versionLine() string { return currentBuildInfo().String() }

// commit, commitTime and commitModified are set by the Makefile (-ldflags "-X main.commit=...")
// for builds whose toolchain records no VCS information (-buildvcs=false, git
// worktrees): the build info's vcs.* settings take precedence.
var commit, commitTime, commitModified string

func currentBuildInfo() buildInfo {
	bi, _ := debug.ReadBuildInfo() // nil when the binary carries none
	b := newBuildInfo(version, bi)
	if b.revision == "" {
		b.revision, b.time, b.modified = commit, commitTime, commitModified == "true"
	}
	return b
}

// newBuildInfo prefers the version set with -ldflags "-X main.version=..."
// (make build, make release) and falls back to what the Go toolchain
// recorded: the module version of `go install ...@v1.2.3`, or the
// pseudo-version `go build` derives from the VCS.
func newBuildInfo(ldVersion string, bi *debug.BuildInfo) buildInfo {
	b := buildInfo{version: ldVersion, goVersion: runtime.Version(), platform: runtime.GOOS + "/" + runtime.GOARCH}
	if b.version == "" {
		b.version = "dev"
	}
	if bi == nil {
		return b
	}
	if b.version == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		b.version = bi.Main.Version
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			b.revision = s.Value
		case "vcs.time":
			b.time = s.Value
		case "vcs.modified":
			b.modified = s.Value == "true"
		}
	}
	return b
}

func (b buildInfo) String() string {
	parts := []string{b.goVersion, b.platform}
	if b.revision != "" {
		rev := b.revision
		if len(rev) > 12 {
			rev = rev[:12]
		}
		commit := "commit " + rev
		if b.time != "" {
			commit += " " + b.time
		}
		parts = append(parts, commit)
	}
	if b.modified {
		parts = append(parts, "modified")
	}
	return fmt.Sprintf("prune-tokens %s (%s)", b.version, strings.Join(parts, ", "))
}
