// Command prune-tokens-bench measures plan and apply on the local MariaDB
// against baselines taken in the same run, so the figures are ratios anyone
// can reproduce with `make bench`:
//
//   - plan: seeds a realistic data set at two sizes, runs the real
//     prune-tokens binary and reports manifest rows per second, session
//     tokens scanned per second and peak RSS (from the child's rusage), next
//     to a plain streaming SELECT of the expired sessions through the same
//     driver.
//   - apply: 200,000 expired, device-less session tokens (a fifth with an
//     unverifiedTokens row), each run on its own identical copy, deleted by
//     `prune-tokens apply --wait 0` at several batch sizes, next to a plain
//     loop of DELETE unverifiedTokens + DELETE sessionTokens WHERE tokenId
//     IN (...), one transaction a batch.
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

	"prune-tokens/internal/dbtest"
	"prune-tokens/internal/seed"
	"prune-tokens/manifest"
)

const day = 24 * time.Hour

func main() {
	var (
		serverDSN  = flag.String("dsn", dbtest.ServerDSN(), "server DSN (no database); the bench creates and drops its own databases")
		bin        = flag.String("bin", "bin/prune-tokens", "prune-tokens binary to measure")
		planSizes  = flag.String("plan-sessions", "1000000,2000000", "session tokens to seed for each plan run")
		applyRows  = flag.Int("apply-rows", 200_000, "expired session tokens per apply run")
		batches    = flag.String("batches", "1000,100,1", "apply batch sizes")
		skipPlan   = flag.Bool("skip-plan", false, "skip the plan benchmark")
		skipApply  = flag.Bool("skip-apply", false, "skip the apply benchmark")
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
		for _, s := range strings.Split(*planSizes, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil {
				b.fail(fmt.Errorf("--plan-sessions: %w", err))
			}
			b.fail(b.plan(n))
		}
		b.flushPlan()
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
		b.fail(b.apply(*applyRows, sizes))
	}
}

type bench struct {
	ctx      context.Context
	server   *mysql.Config
	admin    *sql.DB
	bin      string
	dir      string
	now      time.Time
	dbs      []string
	planRows []string
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

// plan seeds `sessions` session tokens with the realistic mix and plans them.
func (b *bench) plan(sessions int) error {
	name, db, err := b.newDB("plan")
	if err != nil {
		return err
	}
	defer b.drop(name)
	defer db.Close()
	if err := b.loadSchema(db); err != nil {
		return err
	}
	cfg := seed.Scaled(42, b.now.UnixMilli(), sessions)
	// Inserting in key order seeds about three times faster on a small
	// buffer pool; the data is the same.
	cfg.KeyOrder = true
	t0 := time.Now()
	counts, err := seed.Insert(b.ctx, db, cfg)
	if err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	seedTime := time.Since(t0)
	fmt.Fprintf(os.Stderr, "seeded %d rows (%d session tokens) in %s\n", counts.Total(), counts["sessionTokens"], seedTime.Round(time.Millisecond))

	// Baseline: the cheapest read plan could possibly do for the token-age
	// sessions, streamed through the same driver.
	cutoff := b.now.Add(-30 * day).UnixMilli()
	t0 = time.Now()
	var baseRows int64
	rows, err := db.Query("SELECT tokenId, uid, createdAt FROM sessionTokens WHERE createdAt < ? ORDER BY createdAt, tokenId", cutoff)
	if err != nil {
		return err
	}
	var id, uid []byte
	var created int64
	for rows.Next() {
		if err := rows.Scan(&id, &uid, &created); err != nil {
			return err
		}
		baseRows++
	}
	rows.Close()
	baseTime := time.Since(t0)

	out := filepath.Join(b.dir, fmt.Sprintf("plan-%d.parquet", sessions))
	wall, rss, _, err := b.run(b.dsn(name), "plan", "--out", out, "--now", strconv.FormatInt(b.now.UnixMilli(), 10),
		"--maxTokenAge", "30-days", "--maxCodeAge", "30-days", "--maxSessions", "5000",
		"--maxSessionsMaxAccounts", "100", "--maxSessionsMaxDeletions", "100000")
	if err != nil {
		return err
	}
	meta, err := readMeta(out)
	if err != nil {
		return err
	}
	st, _ := os.Stat(out)
	// The size of sessionTokens next to the buffer pool says whether plan's
	// primary-key lookups (createdAt order is random in key order) hit memory or disk.
	var tableBytes int64
	db.Exec("ANALYZE TABLE sessionTokens")
	b.admin.QueryRow("SELECT data_length + index_length FROM information_schema.TABLES WHERE table_schema = ? AND table_name = 'sessionTokens'", name).Scan(&tableBytes)
	b.planRows = append(b.planRows, fmt.Sprintf("| %d (%.0f MiB) | %d | %d | %.2fs | %.0f | %.0f | %.1f MiB | %d rows in %.2fs = %.0f rows/s | %.2f | %.1f MiB |",
		counts["sessionTokens"], float64(tableBytes)/(1<<20), counts.Total(), meta.RowCount, wall.Seconds(),
		float64(meta.RowCount)/wall.Seconds(), float64(counts["sessionTokens"])/wall.Seconds(),
		float64(rss)/1024, baseRows, baseTime.Seconds(), float64(baseRows)/baseTime.Seconds(),
		wall.Seconds()/baseTime.Seconds(), float64(st.Size())/(1<<20)))
	return nil
}

func (b *bench) flushPlan() {
	fmt.Println("## plan")
	fmt.Println()
	fmt.Println("Flags: --maxTokenAge 30-days --maxCodeAge 30-days --maxSessions 5000 --maxSessionsMaxAccounts 100 --maxSessionsMaxDeletions 100000.")
	fmt.Println("Baseline: one streaming `SELECT tokenId, uid, createdAt FROM sessionTokens WHERE createdAt < cutoff ORDER BY createdAt, tokenId` through the same driver.")
	fmt.Println()
	fmt.Println("| session tokens (table + indexes) | rows in db | manifest rows | plan wall | manifest rows/s | session tokens/s | plan peak RSS (VmHWM) | baseline read | plan time / baseline | manifest size |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range b.planRows {
		fmt.Println(r)
	}
	fmt.Println()
}

// applyTemplate builds a database of n expired, device-less session tokens.
func (b *bench) applyTemplate(n int) (string, error) {
	name, db, err := b.newDB("tmpl")
	if err != nil {
		return "", err
	}
	defer db.Close()
	if err := b.loadSchema(db); err != nil {
		return "", err
	}
	old := b.now.Add(-60 * day).UnixMilli()
	const chunk = 1000
	var sess, unv []any
	flush := func() error {
		if len(sess) > 0 {
			q := "INSERT INTO sessionTokens (tokenId, tokenData, uid, createdAt, lastAccessTime) VALUES " + strings.TrimSuffix(strings.Repeat("(?,?,?,?,?),", len(sess)/5), ",")
			if _, err := db.Exec(q, sess...); err != nil {
				return err
			}
		}
		if len(unv) > 0 {
			q := "INSERT INTO unverifiedTokens (tokenId, tokenVerificationId, uid, mustVerify) VALUES " + strings.TrimSuffix(strings.Repeat("(?,?,?,1),", len(unv)/3), ",")
			if _, err := db.Exec(q, unv...); err != nil {
				return err
			}
		}
		sess, unv = sess[:0], unv[:0]
		return nil
	}
	rnd := func(k int) []byte { p := make([]byte, k); _, _ = rand.Read(p); return p }
	uids := make([][]byte, 10_000)
	for i := range uids {
		uids[i] = rnd(16)
	}
	for i := 0; i < n; i++ {
		tok, uid := rnd(32), uids[i%len(uids)]
		created := old - int64(i)*1000
		sess = append(sess, tok, rnd(32), uid, created, created)
		if i%5 == 0 {
			unv = append(unv, tok, rnd(16), uid)
		}
		if len(sess)/5 >= chunk {
			if err := flush(); err != nil {
				return "", err
			}
		}
	}
	return name, flush()
}

func (b *bench) copyDB(from, prefix string) (string, error) {
	name, db, err := b.newDB(prefix)
	if err != nil {
		return "", err
	}
	defer db.Close()
	for _, t := range dbtest.Tables {
		if _, err := b.admin.Exec(fmt.Sprintf("CREATE TABLE `%s`.`%s` LIKE `%s`.`%s`", name, t, from, t)); err != nil {
			return "", err
		}
		if _, err := b.admin.Exec(fmt.Sprintf("INSERT INTO `%s`.`%s` SELECT * FROM `%s`.`%s`", name, t, from, t)); err != nil {
			return "", err
		}
	}
	return name, nil
}

func (b *bench) apply(n int, sizes []int) error {
	tmpl, err := b.applyTemplate(n)
	if err != nil {
		return fmt.Errorf("apply template: %w", err)
	}
	defer b.drop(tmpl)
	// One plan of the template; each run deletes it from its own copy.
	out := filepath.Join(b.dir, "apply.parquet")
	if _, _, _, err := b.run(b.dsn(tmpl), "plan", "--out", out, "--now", strconv.FormatInt(b.now.UnixMilli(), 10), "--maxTokenAge", "30-days"); err != nil {
		return err
	}
	ids, err := manifestIDs(out)
	if err != nil {
		return err
	}
	if len(ids) != n {
		return fmt.Errorf("plan listed %d rows, want %d", len(ids), n)
	}
	fmt.Println("## apply")
	fmt.Println()
	fmt.Printf("%d expired, device-less session tokens (a fifth with an unverifiedTokens row), one plan, each run on its own identical copy, `--wait 0`.\n", n)
	fmt.Println("Baseline: a plain loop through the same driver (interpolateParams=true), in manifest order: BEGIN; DELETE FROM unverifiedTokens WHERE tokenId IN (...); DELETE FROM sessionTokens WHERE tokenId IN (...); COMMIT.")
	fmt.Println()
	fmt.Println("| batch | apply wall | apply rows/s | plain loop wall | plain loop rows/s | apply / plain loop |")
	fmt.Println("|---|---|---|---|---|---|")
	for _, size := range sizes {
		applyDB, err := b.copyDB(tmpl, "apply")
		if err != nil {
			return err
		}
		ckpt := filepath.Join(b.dir, fmt.Sprintf("apply-%d.checkpoint", size))
		wall, _, output, err := b.run(b.dsn(applyDB), "apply", "--manifest", out, "--checkpoint", ckpt,
			"--batchSize", strconv.Itoa(size), "--wait", "0")
		if err != nil {
			return err
		}
		left, err := b.count(applyDB, "sessionTokens")
		if err != nil {
			return err
		}
		if left != 0 {
			return fmt.Errorf("apply at batch %d left %d session tokens\n%s", size, left, output)
		}
		b.drop(applyDB)

		loopDB, err := b.copyDB(tmpl, "loop")
		if err != nil {
			return err
		}
		loopWall, err := b.plainLoop(loopDB, ids, size)
		if err != nil {
			return err
		}
		b.drop(loopDB)
		ar, lr := float64(n)/wall.Seconds(), float64(n)/loopWall.Seconds()
		fmt.Printf("| %d | %.1fs | %.0f | %.1fs | %.0f | %.2f |\n", size, wall.Seconds(), ar, loopWall.Seconds(), lr, ar/lr)
	}
	fmt.Println()
	fmt.Println("apply's wall time includes verifying the manifest, connecting, the named lock, guard reads and an fsync'd checkpoint per batch.")
	return nil
}

func (b *bench) count(dbName, table string) (int, error) {
	var n int
	err := b.admin.QueryRow(fmt.Sprintf("SELECT COUNT(*) FROM `%s`.`%s`", dbName, table)).Scan(&n)
	return n, err
}

func manifestIDs(path string) ([][]byte, error) {
	r, err := manifest.Open(path)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var ids [][]byte
	it := r.Rows(0)
	for row, ok := it.Next(); ok; row, ok = it.Next() {
		ids = append(ids, row.ID)
	}
	return ids, it.Err()
}

func (b *bench) plainLoop(dbName string, ids [][]byte, size int) (time.Duration, error) {
	db, err := sql.Open("mysql", b.dsn(dbName))
	if err != nil {
		return 0, err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if err := db.Ping(); err != nil {
		return 0, err
	}
	start := time.Now()
	for i := 0; i < len(ids); i += size {
		chunk := ids[i:min(i+size, len(ids))]
		args := make([]any, len(chunk))
		for j, id := range chunk {
			args[j] = id
		}
		in := strings.TrimSuffix(strings.Repeat("?,", len(chunk)), ",")
		tx, err := db.Begin()
		if err != nil {
			return 0, err
		}
		if _, err := tx.Exec("DELETE FROM unverifiedTokens WHERE tokenId IN ("+in+")", args...); err != nil {
			tx.Rollback()
			return 0, err
		}
		if _, err := tx.Exec("DELETE FROM sessionTokens WHERE tokenId IN ("+in+")", args...); err != nil {
			tx.Rollback()
			return 0, err
		}
		if err := tx.Commit(); err != nil {
			return 0, err
		}
	}
	return time.Since(start), nil
}
