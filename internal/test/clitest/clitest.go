// Package clitest builds the project's real binaries for tests that must run
// them as separate processes (signals, SIGKILL, faults, the demo).
package clitest

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"prune-tokens/internal/test/dbtest"
)

type build struct {
	once sync.Once
	path string
	out  []byte
	err  error
}

var (
	mu     sync.Mutex
	builds = map[string]*build{}
	tmpDir string
	tmpErr error
)

// Binary builds cmd/prune-tokens once per test process and returns its path.
func Binary(t testing.TB) string {
	t.Helper()
	return Build(t, "./cmd/prune-tokens")
}

// Build builds the command at pkg (relative to the module root) once per
// test process, without -race so that the process under test runs at normal
// speed even under `go test -race`, and returns its path. Call Cleanup from
// TestMain to remove the binaries.
func Build(t testing.TB, pkg string) string {
	t.Helper()
	mu.Lock()
	if tmpDir == "" && tmpErr == nil {
		tmpDir, tmpErr = os.MkdirTemp("", "prune-tokens-bin-")
	}
	b := builds[pkg]
	if b == nil {
		b = &build{}
		builds[pkg] = b
	}
	dir, derr := tmpDir, tmpErr
	mu.Unlock()
	if derr != nil {
		t.Fatalf("build %s: %v", pkg, derr)
	}
	b.once.Do(func() {
		b.path = filepath.Join(dir, filepath.Base(pkg))
		cmd := exec.Command("go", "build", "-o", b.path, pkg)
		cmd.Dir = dbtest.RepoRoot()
		b.out, b.err = cmd.CombinedOutput()
	})
	if b.err != nil {
		t.Fatalf("build %s: %v\n%s", pkg, b.err, b.out)
	}
	return b.path
}

// Cleanup removes the built binaries.
func Cleanup() {
	mu.Lock()
	defer mu.Unlock()
	if tmpDir != "" {
		os.RemoveAll(tmpDir)
	}
}
