// Package clitest builds the real prune-tokens binary for tests that must run
// it as a separate process (signals, SIGKILL, faults).
package clitest

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"prune-tokens/internal/dbtest"
)

var (
	once    sync.Once
	binPath string
	tmpDir  string
	errOut  []byte
	errB    error
)

// Binary builds cmd/prune-tokens once per test process and returns its path.
// Call Cleanup from TestMain to remove it.
func Binary(t testing.TB) string {
	t.Helper()
	once.Do(func() {
		tmpDir, errB = os.MkdirTemp("", "prune-tokens-bin-")
		if errB != nil {
			return
		}
		binPath = filepath.Join(tmpDir, "prune-tokens")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/prune-tokens")
		cmd.Dir = dbtest.RepoRoot()
		errOut, errB = cmd.CombinedOutput()
	})
	if errB != nil {
		t.Fatalf("build prune-tokens: %v\n%s", errB, errOut)
	}
	return binPath
}

// Cleanup removes the built binary.
func Cleanup() {
	if tmpDir != "" {
		os.RemoveAll(tmpDir)
	}
}
