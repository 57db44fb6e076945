package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"prune-tokens/internal/test/dbtest"
	"prune-tokens/manifest"
)

// applyTemplate builds a database of n expired, device-less session tokens
// (a fifth with an unverifiedTokens row).
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

func rnd(k int) []byte {
	p := make([]byte, k)
	_, _ = rand.Read(p)
	return p
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

// variant is one way of running apply: extra flags after the common ones.
type variant struct {
	name  string
	flags []string
}

// comparison is apply (in one or more variants) against the plain loop on
// identical copies: medians over the repetitions.
type comparison struct {
	rows   int
	loop   time.Duration
	apply  []time.Duration // per variant
	output string          // the first variant's last stdout
}

func (c comparison) ratio(i int) float64 { return c.loop.Seconds() / c.apply[i].Seconds() }

// compare runs, reps times, the plain loop and each variant of apply, each
// on its own fresh copy of tmpl (mutate, if set, changes each copy the same
// way first), in an order that rotates between repetitions, with InnoDB's
// purge given time to catch up before every run; it returns the medians.
func (b *bench) compare(tmpl, manifestPath string, rows []manifest.Row, size int, mutate func(db string) error, reps int, variants ...variant) (comparison, error) {
	c := comparison{rows: len(rows), apply: make([]time.Duration, len(variants))}
	approval, err := manifest.FileSHA256(manifestPath)
	if err != nil {
		return c, err
	}
	var loops []time.Duration
	applies := make([][]time.Duration, len(variants))
	for rep := 0; rep < reps; rep++ {
		runs := len(variants) + 1 // index len(variants) is the loop
		for k := 0; k < runs; k++ {
			which := (k + rep) % runs
			b.settle()
			db, err := b.copyDB(tmpl, "run")
			if err != nil {
				return c, err
			}
			if mutate != nil {
				if err := mutate(db); err != nil {
					return c, err
				}
			}
			if err := b.flushTables(db); err != nil {
				return c, err
			}
			if which == len(variants) {
				d, err := b.plainLoop(db, rows, size)
				if err != nil {
					return c, err
				}
				loops = append(loops, d)
			} else {
				ckpt := filepath.Join(b.dir, fmt.Sprintf("apply-%s.checkpoint", db))
				args := append([]string{"apply", "--manifest", manifestPath, "--approve", approval, "--checkpoint", ckpt,
					"--batchSize", strconv.Itoa(size), "--wait", "0", "--maxManifestAge", "0"}, b.applyArgs...)
				d, _, out, err := b.run(b.dsn(db), append(args, variants[which].flags...)...)
				if err != nil {
					return c, err
				}
				applies[which] = append(applies[which], d)
				if which == 0 {
					c.output = out
				}
			}
			b.drop(db)
		}
	}
	c.loop = median(loops)
	for i := range variants {
		c.apply[i] = median(applies[i])
	}
	return c, nil
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

// flushTables writes the copy's dirty pages to disk (FLUSH TABLES ... FOR
// EXPORT, then UNLOCK TABLES): a fresh copy of 200,000 sessions leaves about
// 5,000 dirty pages, most of the buffer pool, which InnoDB would otherwise
// flush while the run under test works, by an amount that depends on the
// timing.
func (b *bench) flushTables(db string) error {
	conn, err := b.admin.Conn(context.Background())
	if err != nil {
		return err
	}
	defer conn.Close()
	var names []string
	for _, t := range dbtest.Tables {
		names = append(names, fmt.Sprintf("`%s`.`%s`", db, t))
	}
	if _, err := conn.ExecContext(context.Background(), "FLUSH TABLES "+strings.Join(names, ", ")+" FOR EXPORT"); err != nil {
		return fmt.Errorf("flush %s: %w", db, err)
	}
	_, err = conn.ExecContext(context.Background(), "UNLOCK TABLES")
	return err
}

// settle waits, up to two minutes, for InnoDB's purge to work off the
// history list the previous run left (its deleted rows), so that each run
// starts from the same state.
func (b *bench) settle() {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		var name string
		var n int64
		if err := b.admin.QueryRow("SHOW GLOBAL STATUS LIKE 'Innodb_history_list_length'").Scan(&name, &n); err != nil || n < 1000 {
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func (b *bench) apply(n int, sizes []int, reps int) error {
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
	rows, err := manifestRows(out)
	if err != nil {
		return err
	}
	if len(rows) != n {
		return fmt.Errorf("plan listed %d rows, want %d", len(rows), n)
	}
	variants := []variant{
		{"defaults", nil},
		{"signals off", []string{"--maxHistoryLength", "0", "--maxBatchTime", "0"}},
		{"with --maxLoad", []string{"--maxLoad", "Threads_running=100000", "--criticalLoad", "Threads_running=200000"}},
	}
	fmt.Println("## apply")
	fmt.Println()
	fmt.Printf("%d expired, device-less session tokens (a fifth with an unverifiedTokens row), one plan, `--wait 0`; each run on its own fresh copy, its dirty pages flushed, purge caught up before each run, runs in rotating order; medians of %d runs.\n", n, reps)
	fmt.Println("Baseline: a plain loop through the same driver (interpolateParams=true), in manifest order: BEGIN; DELETE FROM unverifiedTokens WHERE tokenId IN (...); DELETE FROM sessionTokens WHERE tokenId IN (...); COMMIT.")
	fmt.Println("apply's time is the whole command (verifying the manifest, connecting, the preflights, the named lock, the batches, a checkpoint record fsync'd per batch); the loop's is its delete phase.")
	fmt.Println("apply runs with its default throttle signals (history length and batch time: checked before every batch, a reading reused for 100 ms and taken again in the background at 75 ms), with all signals off (--maxHistoryLength 0 --maxBatchTime 0), and with a load check added that never trips (--maxLoad Threads_running=100000 --criticalLoad Threads_running=200000).")
	fmt.Println()
	fmt.Println("| case | batch | plain loop | loop rows/s | apply (defaults) | rows/s | apply / loop | apply, signals off | apply / loop | apply, with --maxLoad | apply / loop |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|---|")
	for _, size := range sizes {
		c, err := b.compare(tmpl, out, rows, size, nil, reps, variants...)
		if err != nil {
			return err
		}
		fmt.Printf("| all rows as planned | %d | %.2fs | %.0f | %.2fs | %.0f | %.2f | %.2fs | %.2f | %.2fs | %.2f |\n", size,
			c.loop.Seconds(), float64(c.rows)/c.loop.Seconds(), c.apply[0].Seconds(), float64(c.rows)/c.apply[0].Seconds(), c.ratio(0),
			c.apply[1].Seconds(), c.ratio(1), c.apply[2].Seconds(), c.ratio(2))
	}
	// The slow path: a tenth of the rows changed after the plan.
	mutate := func(db string) error { return b.spoilTenth(db, rows) }
	for _, size := range sizes {
		if size == 1 {
			continue // 200,000 one-row batches take minutes a run; the slow path is the same statements plus a read
		}
		c, err := b.compare(tmpl, out, rows, size, mutate, reps, variants[0])
		if err != nil {
			return err
		}
		fmt.Printf("| a tenth gone, changed or with a device | %d | %.2fs | %.0f | %.2fs | %.0f | %.2f | | | | |\n", size,
			c.loop.Seconds(), float64(c.rows)/c.loop.Seconds(), c.apply[0].Seconds(), float64(c.rows)/c.apply[0].Seconds(), c.ratio(0))
		if i := strings.Index(c.output, "│ total"); i >= 0 {
			fmt.Fprintf(os.Stderr, "slow path at batch %d: %s\n", size, strings.Fields(c.output[i:])[0:12])
		}
	}
	fmt.Println()
	fmt.Println("In the last rows, before each run a tenth of the listed sessions were deleted, given a device, or had their createdAt changed (a third each), on every copy; apply counts them as already gone or skipped by guard, the loop deletes by key regardless.")
	fmt.Println()
	return nil
}

// spoilTenth changes one listed row in ten after the plan, as the service
// would: deleted, given a device, or its createdAt changed.
func (b *bench) spoilTenth(db string, rows []manifest.Row) error {
	conn, err := sql.Open("mysql", b.dsn(db))
	if err != nil {
		return err
	}
	defer conn.Close()
	for i := 0; i < len(rows); i += 10 {
		r := rows[i]
		var q string
		var args []any
		switch (i / 10) % 3 {
		case 0:
			q, args = "DELETE FROM sessionTokens WHERE tokenId = ?", []any{r.ID}
		case 1:
			q, args = "INSERT INTO devices (uid, id, sessionTokenId, createdAt) VALUES (?, ?, ?, 1)", []any{r.UID, rnd(16), r.ID}
		default:
			q, args = "UPDATE sessionTokens SET createdAt = createdAt + 1 WHERE tokenId = ?", []any{r.ID}
		}
		if _, err := conn.Exec(q, args...); err != nil {
			return err
		}
	}
	return nil
}

// applyAtScale applies the plan of the first plan size (its sessionTokens
// larger than the buffer pool) to a copy of its database, against the plain
// loop over the same rows on another copy.
func (b *bench) applyAtScale(p *planResult) error {
	defer b.drop(p.dbName)
	rows, err := manifestRows(p.manifest)
	if err != nil {
		return err
	}
	var bp int64
	b.admin.QueryRow("SELECT @@innodb_buffer_pool_size").Scan(&bp)
	// One run each: a run takes minutes, and the table, three times the
	// buffer pool, is read from disk either way.
	c, err := b.compare(p.dbName, p.manifest, rows, 1000, nil, 1, variant{"defaults", nil},
		variant{"fixed batch size", []string{"--maxBatchTime", "0"}})
	if err != nil {
		return err
	}
	fmt.Println("## apply at scale")
	fmt.Println()
	fmt.Printf("The manifest of the %d-session plan above (%d rows in every section), applied to a copy of its database (sessionTokens %.0f MiB, %.1f times the %d MiB buffer pool), `--batchSize 1000 --wait 0`, against the plain loop over the same rows on another copy: per batch of one section, BEGIN; for sessions DELETE FROM unverifiedTokens and (max-sessions) devices; DELETE FROM the table WHERE key IN (...); COMMIT.\n\n",
		p.sessions, len(rows), p.tableMiB, p.tableMiB/float64(bp>>20), bp>>20)
	fmt.Println("| rows | plain loop | loop rows/s | apply (defaults) | rows/s | apply / loop | apply, --maxBatchTime 0 | rows/s | apply / loop |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|")
	fmt.Printf("| %d | %.1fs | %.0f | %.1fs | %.0f | %.2f | %.1fs | %.0f | %.2f |\n\n", c.rows,
		c.loop.Seconds(), float64(c.rows)/c.loop.Seconds(), c.apply[0].Seconds(), float64(c.rows)/c.apply[0].Seconds(), c.ratio(0),
		c.apply[1].Seconds(), float64(c.rows)/c.apply[1].Seconds(), c.ratio(1))
	fmt.Println("apply's default --maxBatchTime 500ms shrinks a batch that takes longer (here, where every row is a disk read, many do); with 0 it keeps 1,000 rows like the loop.")
	fmt.Println()
	return nil
}

func manifestRows(path string) ([]manifest.Row, error) {
	r, err := manifest.Open(path)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var out []manifest.Row
	it := r.Rows(0)
	for row, ok := it.Next(); ok; row, ok = it.Next() {
		out = append(out, row)
	}
	return out, it.Err()
}

// plainLoop deletes rows by key the way a careful script would, with no
// guard and no checkpoint: batches of one section in manifest order, one
// transaction each, a session's unverifiedTokens (and, in max-sessions,
// devices) rows first.
func (b *bench) plainLoop(dbName string, rows []manifest.Row, size int) (time.Duration, error) {
	db, err := sql.Open("mysql", b.dsn(dbName))
	if err != nil {
		return 0, err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if err := db.Ping(); err != nil {
		return 0, err
	}
	keyCol := map[string]string{
		manifest.TableSessionTokens: "tokenId", manifest.TableAccountResetTokens: "tokenId",
		manifest.TablePasswordForgotTokens: "tokenId", manifest.TablePasswordChangeTokens: "tokenId",
		manifest.TableSigninCodes: "hash",
	}
	start := time.Now()
	for i := 0; i < len(rows); {
		j := i
		for j < len(rows) && j-i < size && rows[j].Section() == rows[i].Section() {
			j++
		}
		chunk := rows[i:j]
		i = j
		var ids, pairs []any
		for _, r := range chunk {
			ids = append(ids, r.ID)
			pairs = append(pairs, r.UID, r.ID)
		}
		in := strings.TrimSuffix(strings.Repeat("?,", len(chunk)), ",")
		or := strings.TrimSuffix(strings.Repeat("(uid = ? AND %s = ?) OR ", len(chunk)), " OR ")
		type stmt struct {
			q    string
			args []any
		}
		var stmts []stmt
		switch t := chunk[0].Table; t {
		case manifest.TableSessionTokens:
			stmts = append(stmts, stmt{"DELETE FROM unverifiedTokens WHERE tokenId IN (" + in + ")", ids})
			if chunk[0].Stage == manifest.StageMaxSessions {
				stmts = append(stmts, stmt{"DELETE FROM devices WHERE " + strings.ReplaceAll(or, "%s", "sessionTokenId"), pairs})
			}
			stmts = append(stmts, stmt{"DELETE FROM sessionTokens WHERE tokenId IN (" + in + ")", ids})
		case manifest.TableUnblockCodes:
			stmts = append(stmts, stmt{"DELETE FROM unblockCodes WHERE " + strings.ReplaceAll(or, "%s", "unblockCodeHash"), pairs})
		default:
			stmts = append(stmts, stmt{"DELETE FROM " + t + " WHERE " + keyCol[t] + " IN (" + in + ")", ids})
		}
		tx, err := db.Begin()
		if err != nil {
			return 0, err
		}
		for _, s := range stmts {
			if _, err := tx.Exec(s.q, s.args...); err != nil {
				tx.Rollback()
				return 0, err
			}
		}
		if err := tx.Commit(); err != nil {
			return 0, err
		}
	}
	return time.Since(start), nil
}
