package clitest

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// RunLimit bounds every run of the binary: a hang fails the test instead of
// stalling CI.
const RunLimit = 4 * time.Minute

// Exit codes Proc.Code takes besides the process's own.
const (
	KilledBySignal = -1
	KilledAtLimit  = -100
)

// SyncBuffer is a buffer that exec's copier and the test may share.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Proc is a running prune-tokens. Code and Elapsed are set when Done closes.
type Proc struct {
	Cmd            *exec.Cmd
	Stdout, Stderr *SyncBuffer
	Done           chan struct{}
	Code           int
	Elapsed        time.Duration
}

// Start runs the binary with args; env adds to the test's environment minus
// PRUNE_TOKENS_DSN, so a developer's shell never leaks into a test. The
// process is killed when the test ends, or at RunLimit.
func Start(t testing.TB, env []string, args ...string) *Proc {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), RunLimit)
	cmd := exec.CommandContext(ctx, Binary(t), args...)
	cmd.Env = append(cleanEnv(), env...)
	p := &Proc{Cmd: cmd, Stdout: &SyncBuffer{}, Stderr: &SyncBuffer{}, Done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.Stdout, p.Stderr
	begin := time.Now()
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	go func() {
		defer cancel()
		err := cmd.Wait()
		p.Elapsed = time.Since(begin)
		p.Code = cmd.ProcessState.ExitCode()
		if ctx.Err() != nil {
			p.Code = KilledAtLimit
		} else if err != nil && p.Code < 0 {
			p.Code = KilledBySignal
		}
		close(p.Done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.Done:
		default:
			_ = cmd.Process.Kill()
			<-p.Done
		}
	})
	return p
}

// Run starts the binary and waits for it.
func Run(t testing.TB, env []string, args ...string) *Proc {
	t.Helper()
	return Start(t, env, args...).Wait(t)
}

// Wait waits for the process; a hang, or the driver's own log lines on
// stderr (which would break the one-line error promise), fail the test.
func (p *Proc) Wait(t testing.TB) *Proc {
	t.Helper()
	<-p.Done
	if p.Code == KilledAtLimit {
		t.Fatalf("prune-tokens %q still running after %v: it hangs\nstdout:\n%s\nstderr:\n%s", p.Cmd.Args[1:], RunLimit, p.Stdout, p.Stderr)
	}
	if strings.Contains(p.Stderr.String(), "[mysql]") {
		t.Errorf("prune-tokens %q: driver log on stderr:\n%s", p.Cmd.Args[1:], p.Stderr)
	}
	return p
}

// Kill sends SIGKILL and waits for the process to end.
func (p *Proc) Kill() {
	_ = p.Cmd.Process.Signal(syscall.SIGKILL)
	<-p.Done
}

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.Done:
		return true
	default:
		return false
	}
}

// WaitFor polls until cond holds; it fails the test if the process ends
// first or a minute passes (a hang is a failure, not a timing assertion).
func (p *Proc) WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if p.Exited() {
			t.Fatalf("prune-tokens ended (%s) before %s", p, what)
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// LastLine is the error line: every failure ends with one line prefixed
// "prune-tokens: ".
func (p *Proc) LastLine(t testing.TB) string {
	t.Helper()
	s := strings.TrimRight(p.Stderr.String(), "\n")
	lines := strings.Split(s, "\n")
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, "prune-tokens: ") {
		t.Errorf("last stderr line is not a prune-tokens error: %q", s)
	}
	return last
}

func (p *Proc) String() string {
	return "exit " + strconv.Itoa(p.Code) + "\nstdout:\n" + p.Stdout.String() + "\nstderr:\n" + p.Stderr.String()
}

func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PRUNE_TOKENS_DSN=") {
			out = append(out, kv)
		}
	}
	return out
}
