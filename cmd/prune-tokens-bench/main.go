// Command prune-tokens-bench measures plan and apply on the local MariaDB
// against baselines doing the same job in the same run, so the figures are
// ratios anyone can reproduce with `make bench`:
//
//   - plan: seeds a realistic data set at two sizes (1M and 3M sessions by
//     default: tables larger than the default buffer pool), runs the real
//     prune-tokens binary and reports its time against every statement plan
//     needs run once, unpaged, through the same driver; rows/s, time per
//     manifest row and peak RSS (the child's VmHWM).
//   - apply at scale: the first size's manifest applied to a copy of its
//     database, against the plain delete loop on another copy.
//   - apply: 200,000 expired, device-less session tokens (a fifth with an
//     unverifiedTokens row), each run on its own identical copy, deleted by
//     `prune-tokens apply --wait 0` at several batch sizes, next to a plain
//     loop of DELETE unverifiedTokens + DELETE sessionTokens WHERE tokenId
//     IN (...), one transaction a batch; then the same with a tenth of the
//     rows changed after the plan (apply's slow path).
package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"prune-tokens/internal/test/dbtest"
	"prune-tokens/manifest"
)

const day = 24 * time.Hour

func main() {
	var (
		serverDSN  = flag.String("dsn", dbtest.ServerDSN(), "server DSN (no database); the bench creates and drops its own databases")
		bin        = flag.String("bin", "bin/prune-tokens", "prune-tokens binary to measure")
		planSizes  = flag.String("plan-sessions", "1000000,3000000", "session tokens to seed for each plan run")
		applyRows  = flag.Int("apply-rows", 200_000, "expired session tokens per apply run")
		batches    = flag.String("batches", "1000,100,1", "apply batch sizes")
		applyArgs  = flag.String("apply-args", "", "extra flags for every apply run (space-separated)")
		reps       = flag.Int("reps", 3, "runs of each apply comparison; the medians count")
		skipPlan   = flag.Bool("skip-plan", false, "skip the plan benchmark")
		skipApply  = flag.Bool("skip-apply", false, "skip the apply benchmark")
		skipScale  = flag.Bool("skip-scale", false, "skip apply at scale (the first plan size applied, against the plain loop)")
		keepTmpDir = flag.Bool("keep", false, "keep manifests in the work directory")
	)
	flag.Parse()
	b, err := newBench(*serverDSN, *bin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "prune-tokens-bench:", err)
		os.Exit(2)
	}
	defer b.close(*keepTmpDir)
	b.describeMachine()
	if !*skipPlan {
		var results []*planResult
		for _, s := range strings.Split(*planSizes, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil {
				b.fail(fmt.Errorf("--plan-sessions: %w", err))
			}
			r, err := b.plan(n)
			b.fail(err)
			results = append(results, r)
			// The first size's database and manifest serve apply at
			// scale; the others are dropped now to keep disk use down.
			if len(results) > 1 || *skipScale {
				b.drop(r.dbName)
			}
		}
		b.flushPlan(results)
		if !*skipScale {
			b.fail(b.applyAtScale(results[0]))
		}
	}
	if !*skipApply {
		var sizes []int
		for _, s := range strings.Split(*batches, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil {
				b.fail(fmt.Errorf("--batches: %w", err))
			}
			sizes = append(sizes, n)
		}
		b.applyArgs = strings.Fields(*applyArgs)
		b.fail(b.apply(*applyRows, sizes, max(1, *reps)))
	}
}

type bench struct {
	ctx    context.Context
	server *mysql.Config
	admin  *sql.DB
	bin    string
	dir    string
	now    time.Time
	dbs    []string
	// applyArgs are extra flags for every apply run.
	applyArgs []string
}

func newBench(serverDSN, bin string) (*bench, error) {
	cfg, err := mysql.ParseDSN(serverDSN)
	if err != nil {
		return nil, fmt.Errorf("--dsn: %w", err)
	}
	cfg.DBName = ""
	cfg.InterpolateParams = true
	admin, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		return nil, err
	}
	if err := admin.Ping(); err != nil {
		return nil, fmt.Errorf("MariaDB at %s: %w", cfg.Addr, err)
	}
	abs, err := filepath.Abs(bin)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(abs); err != nil {
		return nil, fmt.Errorf("binary %s: %w (run make build)", bin, err)
	}
	dir, err := os.MkdirTemp("", "prune-tokens-bench-")
	if err != nil {
		return nil, err
	}
	return &bench{ctx: context.Background(), server: cfg, admin: admin, bin: abs, dir: dir,
		now: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)}, nil
}

func (b *bench) fail(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "prune-tokens-bench:", err)
		b.close(false)
		os.Exit(1)
	}
}

func (b *bench) close(keep bool) {
	for _, d := range b.dbs {
		b.admin.Exec("DROP DATABASE IF EXISTS `" + d + "`")
	}
	b.dbs = nil
	if !keep {
		os.RemoveAll(b.dir)
	}
}

func (b *bench) newDB(prefix string) (string, *sql.DB, error) {
	var r [4]byte
	_, _ = rand.Read(r[:])
	name := fmt.Sprintf("pt_bench_%s_%x", prefix, r)
	if _, err := b.admin.Exec("CREATE DATABASE `" + name + "`"); err != nil {
		return "", nil, err
	}
	b.dbs = append(b.dbs, name)
	db, err := sql.Open("mysql", b.dsn(name))
	if err != nil {
		return "", nil, err
	}
	return name, db, nil
}

func (b *bench) dsn(name string) string {
	c := b.server.Clone()
	c.DBName = name
	return c.FormatDSN()
}

func (b *bench) drop(name string) {
	b.admin.Exec("DROP DATABASE IF EXISTS `" + name + "`")
	for i, d := range b.dbs {
		if d == name {
			b.dbs = append(b.dbs[:i], b.dbs[i+1:]...)
			break
		}
	}
}

func (b *bench) loadSchema(db *sql.DB) error {
	stmts, err := dbtest.SchemaSQL()
	if err != nil {
		return err
	}
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			return err
		}
	}
	return nil
}

func (b *bench) describeMachine() {
	var version, bp, flush string
	b.admin.QueryRow("SELECT VERSION(), @@innodb_buffer_pool_size, @@innodb_flush_log_at_trx_commit").Scan(&version, &bp, &flush)
	cpu := "unknown CPU"
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(l, "model name") {
				cpu = strings.TrimSpace(strings.SplitN(l, ":", 2)[1])
				break
			}
		}
	}
	mem := ""
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		mem = strings.Join(strings.Fields(strings.SplitN(string(data), "\n", 2)[0])[1:], " ")
	}
	fmt.Printf("# prune-tokens benchmark\n\n")
	fmt.Printf("Machine: %d CPUs (%s), %s memory, %s/%s, %s.\n", runtime.NumCPU(), cpu, mem, runtime.GOOS, runtime.GOARCH, runtime.Version())
	fmt.Printf("Database: MariaDB %s at %s, innodb_buffer_pool_size=%s, innodb_flush_log_at_trx_commit=%s.\n", version, b.server.Addr, bp, flush)
	fmt.Printf("Binary: %s. Planning instant: %s.\n\n", b.bin, b.now.Format(time.RFC3339))
}

// run executes the prune-tokens binary and returns its wall time and peak
// RSS in KiB. The peak is the child's own VmHWM, sampled from /proc while it
// runs: the rusage of a child forked from this (large, seeding) process
// would report this process's memory instead.
func (b *bench) run(dsn string, args ...string) (time.Duration, int64, string, error) {
	cmd := exec.Command(b.bin, args...)
	cmd.Env = append(os.Environ(), "PRUNE_TOKENS_DSN="+dsn)
	var out strings.Builder
	cmd.Stdout = &out
	cmd.Stderr = &out
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, 0, "", err
	}
	var rss int64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		status := fmt.Sprintf("/proc/%d/status", cmd.Process.Pid)
		for {
			if kb := vmHWM(status); kb > rss {
				rss = kb
			}
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	err := cmd.Wait()
	wall := time.Since(start)
	close(stop)
	<-sampled
	if err != nil {
		return wall, rss, out.String(), fmt.Errorf("%s %s: %w\n%s", filepath.Base(b.bin), args[0], err, out.String())
	}
	return wall, rss, out.String(), nil
}

// vmHWM reads the peak resident set size (KiB) from a /proc status file, or
// 0 once the process is gone.
func vmHWM(path string) int64 {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			f := strings.Fields(l)
			if len(f) >= 2 {
				n, _ := strconv.ParseInt(f[1], 10, 64)
				return n
			}
		}
	}
	return 0
}

func readMeta(path string) (*manifest.Meta, error) {
	r, err := manifest.Open(path)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return r.Meta(), nil
}
