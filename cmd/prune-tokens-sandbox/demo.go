package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/urfave/cli/v2"

	"prune-tokens/applier"
	"prune-tokens/internal/dbconn"
	"prune-tokens/internal/sandbox"
	"prune-tokens/internal/seed"
)

func demoCommand() *cli.Command {
	return &cli.Command{
		Name:  "demo",
		Usage: "run the plan → review → apply → resume story on the sandbox (or on DEMO_DSN), printing each step",
		Description: "Starts the sandbox on a free loopback port (or, with --dsn/DEMO_DSN, creates its own database on that\n" +
			"MySQL/MariaDB server and drops it at the end), seeds it, and runs the real prune-tokens binary:\n" +
			"plan, inspect --format markdown, apply --approve interrupted with SIGINT, apply again to completion.\n" +
			"Exits non-zero if any step does not behave as the README says.",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "bin", Usage: "prune-tokens binary `PATH` (default: prune-tokens beside this program, else on PATH)"},
			&cli.StringFlag{Name: "dsn", EnvVars: []string{"DEMO_DSN"}, Usage: "run on this MySQL/MariaDB server instead of the sandbox (`DSN`; a database is created and dropped)"},
			&cli.StringFlag{Name: "dir", Usage: "keep the manifest, summary and checkpoint in `DIR` (default: a temporary directory, removed)"},
			&cli.IntFlag{Name: "maxSessions", Value: 100, Usage: "plan's --maxSessions"},
			&cli.IntFlag{Name: "batchSize", Value: 250, Usage: "apply's --batchSize"},
			&cli.StringFlag{Name: "wait", Value: "20ms", Usage: "apply's --wait"},
		}, dataFlags...),
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return flagErrorf("demo takes no arguments, got %q", c.Args().First())
			}
			cfg, err := seedConfig(c)
			if err != nil {
				return err
			}
			bin, err := findBinary(c.String("bin"))
			if err != nil {
				return err
			}
			if c.Int("maxSessions") < 1 || c.Int("batchSize") < 1 {
				return flagErrorf("--maxSessions and --batchSize must be at least 1")
			}
			d := &demo{out: c.App.Writer, errw: c.App.ErrWriter, bin: bin, seed: cfg, dsn: c.String("dsn"),
				dir: c.String("dir"), maxSessions: c.Int("maxSessions"), batchSize: c.Int("batchSize"), wait: c.String("wait")}
			return d.run(c.Context)
		},
	}
}

// findBinary resolves the prune-tokens binary the demo drives.
func findBinary(flag string) (string, error) {
	if flag != "" {
		if _, err := os.Stat(flag); err != nil {
			return "", flagErrorf("--bin %q: %v", flag, err)
		}
		return filepath.Abs(flag)
	}
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), "prune-tokens")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	p, err := exec.LookPath("prune-tokens")
	if err != nil {
		return "", flagErrorf("no prune-tokens binary beside this program or on PATH; build it (make build) or pass --bin")
	}
	return p, nil
}

type demo struct {
	out, errw   io.Writer
	bin         string
	seed        seed.Config
	dsn         string // DEMO_DSN; empty: the sandbox
	dir         string
	maxSessions int
	batchSize   int
	wait        string

	target   *mysql.Config // database the story runs on
	redacted string
	db       *sql.DB
}

func (d *demo) step(format string, args ...any) {
	fmt.Fprintf(d.out, "\n== "+format+"\n", args...)
}

func (d *demo) run(ctx context.Context) (err error) {
	start := time.Now()
	if d.dir == "" {
		if d.dir, err = os.MkdirTemp("", "prune-tokens-demo-"); err != nil {
			return err
		}
		defer os.RemoveAll(d.dir)
	} else if err := os.MkdirAll(d.dir, 0o700); err != nil {
		return err
	}

	d.step("1. Start a database and seed it with synthetic FxA data")
	name := "fxa"
	var server *mysql.Config
	if d.dsn == "" {
		sb, err := sandbox.Start("127.0.0.1:0", d.errw)
		if err != nil {
			return err
		}
		defer sb.Close()
		if server, err = sb.Config(name); err != nil {
			return err
		}
		fmt.Fprintf(d.out, "$ prune-tokens-sandbox --listen %s --seed %d --now %d\n", sb.Addr, d.seed.Seed, d.seed.Now)
		fmt.Fprintf(d.out, "  (go-mysql-server in this process: an in-memory MySQL-compatible server; nothing else is touched)\n")
	} else {
		if server, err = mysql.ParseDSN(d.dsn); err != nil {
			return flagErrorf("DEMO_DSN: %v", err)
		}
		var rnd [4]byte
		_, _ = rand.Read(rnd[:])
		name = "prune_tokens_demo_" + hex.EncodeToString(rnd[:])
		fmt.Fprintf(d.out, "Using the server of DEMO_DSN (%s); the demo creates database %s and drops it at the end.\n",
			dbconn.Redact(server), name)
		defer func() {
			if derr := sandbox.DropDatabase(server, name); derr != nil && err == nil {
				err = derr
			}
		}()
	}
	d.target = server.Clone()
	d.target.DBName = name
	d.redacted = dbconn.Redact(d.target)
	if d.db, err = sandbox.CreateDatabase(ctx, server, name, d.dsn != ""); err != nil {
		return err
	}
	defer d.db.Close()
	fmt.Fprintf(d.out, "  ")
	if _, err := populate(ctx, d.db, d.seed, d.out); err != nil {
		return err
	}
	before, err := takeSnapshot(ctx, d.db)
	if err != nil {
		return err
	}

	plan := filepath.Join(d.dir, "plan.parquet")
	summary := filepath.Join(d.dir, "plan.md")
	d.step("2. Plan: read the database (never writes) and list the rows to delete in a manifest")
	fmt.Fprintf(d.out, "$ export PRUNE_TOKENS_DSN='%s'   # keeps a password out of the process list\n", d.redacted)
	planOut, code, err := d.prune(ctx, "plan", "--now", fmt.Sprint(d.seed.Now),
		"--maxTokenAge", "30-days", "--maxCodeAge", "30-days", "--maxSessions", fmt.Sprint(d.maxSessions),
		"--out", plan, "--summary", summary)
	if err != nil || code != 0 {
		return stepFailed("plan", code, err)
	}
	sha, err := fileSHA256(plan)
	if err != nil {
		return err
	}
	if !strings.Contains(strings.ToLower(planOut), sha) {
		return fmt.Errorf("plan did not print the manifest file's SHA-256 %s", sha)
	}
	fmt.Fprintf(d.out, "\nThe reviewer checks the summary and approves the manifest by its SHA-256:\n  %s\n", sha)
	gone, err := expectedDeletions(plan, before)
	if err != nil {
		return err
	}

	d.step("3. Inspect: the summary again, from the file alone, as Markdown for the change ticket")
	if _, code, err := d.prune(ctx, "inspect", plan, "--format", "markdown"); err != nil || code != 0 {
		return stepFailed("inspect", code, err)
	}

	applyArgs := []string{"apply", "--manifest", plan, "--approve", sha,
		"--batchSize", fmt.Sprint(d.batchSize), "--wait", d.wait}
	d.step("4. Apply the approved manifest, and interrupt it part-way (Ctrl-C)")
	if d.dsn == "" {
		// apply refuses to run with a history-length limit it cannot read.
		applyArgs = append(applyArgs, "--maxHistoryLength", "0")
		fmt.Fprintf(d.out, "The sandbox is not InnoDB: it has no history list length to watch, so the demo passes --maxHistoryLength 0.\n")
	}
	interruptedAt, code, err := d.applyInterrupted(ctx, applyArgs)
	if err != nil {
		return err
	}
	if code != 3 {
		return fmt.Errorf("interrupted apply exited %d, want 3 (README: exit codes)", code)
	}
	fmt.Fprintf(d.out, "  (SIGINT after %d rows; exit code 3: interrupted, resumable)\n", interruptedAt)
	mid, err := takeSnapshot(ctx, d.db)
	if err != nil {
		return err
	}

	d.step("5. Resume: run the same command again, it continues after the last committed batch")
	if _, code, err := d.prune(ctx, applyArgs...); err != nil || code != 0 {
		return stepFailed("resumed apply", code, err)
	}

	d.step("6. Check: every row of the nine tables, before, after the interruption, and at the end")
	after, err := takeSnapshot(ctx, d.db)
	if err != nil {
		return err
	}
	fmt.Fprintf(d.out, "%-22s %8s %12s %8s %8s %14s\n", "table", "before", "interrupted", "after", "deleted", "by the rules")
	var deleted, ruled int
	for _, t := range tables {
		n := before.count(t) - after.count(t)
		fmt.Fprintf(d.out, "%-22s %8d %12d %8d %8d %14d\n", t, before.count(t), mid.count(t), after.count(t), n, len(gone[t]))
		deleted += n
		ruled += len(gone[t])
	}
	var problems []string
	for _, p := range checkIdentity(before, mid, gone, false) {
		problems = append(problems, "after the interruption, "+p)
	}
	problems = append(problems, checkIdentity(before, after, gone, true)...)
	if midGone := before.total() - mid.total(); midGone == 0 || midGone >= deleted {
		problems = append(problems, fmt.Sprintf("the interrupted apply deleted %d of %d rows: not part-way", midGone, deleted))
	}
	if len(problems) > 0 {
		return fmt.Errorf("demo outcome wrong: %s", strings.Join(problems, "; "))
	}
	fmt.Fprintf(d.out, "\nExactly the approved manifest: its %d rows, the %d unverifiedTokens rows of its sessions and the %d devices of\n"+
		"its max-sessions sessions are gone; every other row of the nine tables is unchanged, compared byte for byte\n"+
		"(keyFetchTokens untouched). Demo finished in %v.\n",
		ruled-len(gone["unverifiedTokens"])-len(gone["devices"]), len(gone["unverifiedTokens"]), len(gone["devices"]), time.Since(start).Round(100*time.Millisecond))
	return nil
}

// prune runs the prune-tokens binary with PRUNE_TOKENS_DSN set, echoing the
// command and its output, indented, and returns that output and the exit
// code. stdout and stderr are one pipe, so progress lines, notes and tables
// show in the order the command wrote them.
func (d *demo) prune(ctx context.Context, args ...string) (string, int, error) {
	cmd := d.command(ctx, args)
	var captured bytes.Buffer
	w := newIndenter(d.out)
	out := io.MultiWriter(w, &captured)
	cmd.Stdout, cmd.Stderr = out, out
	err := cmd.Run()
	w.Flush()
	code, err := exitStatus(err)
	return captured.String(), code, err
}

func (d *demo) command(ctx context.Context, args []string) *exec.Cmd {
	fmt.Fprintf(d.out, "$ prune-tokens %s\n", strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, d.bin, args...)
	cmd.Env = append(os.Environ(), "PRUNE_TOKENS_DSN="+d.target.FormatDSN())
	cmd.WaitDelay = 10 * time.Second
	return cmd
}

// applyInterrupted starts apply, sends SIGINT once its checkpoint shows a
// third of the rows committed, and waits for it to stop.
func (d *demo) applyInterrupted(ctx context.Context, args []string) (int64, int, error) {
	cmd := d.command(ctx, args)
	w := newIndenter(d.out)
	cmd.Stdout, cmd.Stderr = w, w // one pipe: lines in the order apply wrote them
	if err := cmd.Start(); err != nil {
		return 0, 0, fmt.Errorf("start apply: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	checkpoint := filepath.Join(d.dir, "plan.parquet.checkpoint")
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-exited:
			w.Flush()
			code, err := exitStatus(err)
			if err == nil && code == 0 {
				err = errors.New("apply finished before the demo could interrupt it (try a smaller --batchSize or a longer --wait)")
			} else if err == nil {
				err = fmt.Errorf("apply exited %d before it was interrupted", code)
			}
			return 0, code, err
		case <-tick.C:
			next, total, perr := applier.Progress(checkpoint)
			if perr != nil || total == 0 || next*3 < total {
				continue
			}
			w.Note("^C")
			_ = cmd.Process.Signal(syscall.SIGINT)
			err := <-exited
			w.Flush()
			code, err := exitStatus(err)
			return next, code, err
		}
	}
}

func exitStatus(err error) (int, error) {
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.Exited() {
		return ee.ExitCode(), nil
	}
	if err != nil {
		return -1, err
	}
	return 0, nil
}

func stepFailed(step string, code int, err error) error {
	if err != nil {
		return fmt.Errorf("%s: %w", step, err)
	}
	return fmt.Errorf("%s exited %d", step, code)
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// indenter prefixes every line a child prints with two spaces, so the
// operator's commands stand out from the tool's output.
type indenter struct {
	mu  sync.Mutex // the child's output and the demo's Note
	w   io.Writer
	buf []byte
}

func newIndenter(w io.Writer) *indenter { return &indenter{w: w} }

func (i *indenter) Write(p []byte) (int, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.buf = append(i.buf, p...)
	for {
		n := bytes.IndexByte(i.buf, '\n')
		if n < 0 {
			break
		}
		i.emit(i.buf[:n])
		i.buf = i.buf[n+1:]
	}
	return len(p), nil
}

// emit writes one line; a progress bar's carriage returns keep only the
// last state.
func (i *indenter) emit(line []byte) {
	if k := bytes.LastIndexByte(bytes.TrimRight(line, "\r"), '\r'); k >= 0 {
		line = line[k+1:]
	}
	fmt.Fprintf(i.w, "  %s\n", bytes.TrimRight(line, "\r"))
}

func (i *indenter) Flush() {
	i.mu.Lock()
	defer i.mu.Unlock()
	if len(i.buf) > 0 {
		i.emit(i.buf)
		i.buf = nil
	}
}

// Note writes a line of the demo's own between the child's lines.
func (i *indenter) Note(s string) {
	i.mu.Lock()
	defer i.mu.Unlock()
	fmt.Fprintf(i.w, "%s\n", s)
}
