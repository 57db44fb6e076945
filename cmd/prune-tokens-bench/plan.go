package main

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"prune-tokens/internal/seed"
)

// planFlags are the flags every plan run of the bench uses.
var planFlags = []string{"--maxTokenAge", "30-days", "--maxCodeAge", "30-days", "--maxSessions", "5000",
	"--maxSessionsMaxAccounts", "100", "--maxSessionsMaxDeletions", "100000"}

// planResult is one size's measurements.
type planResult struct {
	sessions, dbRows, manifestRows int64
	tableMiB                       float64
	plan, baseline                 time.Duration
	baselineRows                   int64
	rssKiB                         int64
	fileMiB                        float64
	manifest                       string // kept for the apply-at-scale run
	dbName                         string // kept for the apply-at-scale run
}

// seedPlanDB creates a database with `sessions` session tokens of the
// realistic mix (seed.Scaled).
func (b *bench) seedPlanDB(sessions int) (string, *sql.DB, seed.Counts, error) {
	name, db, err := b.newDB("plan")
	if err != nil {
		return "", nil, nil, err
	}
	if err := b.loadSchema(db); err != nil {
		return "", nil, nil, err
	}
	cfg := seed.Scaled(42, b.now.UnixMilli(), sessions)
	// Inserting in key order seeds much faster on a small buffer pool; the
	// data is the same.
	cfg.KeyOrder = true
	t0 := time.Now()
	counts, err := seed.Insert(b.ctx, db, cfg)
	if err != nil {
		return "", nil, nil, fmt.Errorf("seed: %w", err)
	}
	fmt.Fprintf(os.Stderr, "seeded %d rows (%d session tokens) in %s\n", counts.Total(), counts["sessionTokens"], time.Since(t0).Round(time.Millisecond))
	return name, db, counts, nil
}

// plan seeds a database, reads it with the baseline and plans it. The
// baseline runs before and after plan (the buffer pool then holds what the
// previous reader left); the faster of the two counts.
func (b *bench) plan(sessions int) (*planResult, error) {
	name, db, counts, err := b.seedPlanDB(sessions)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	res := &planResult{sessions: counts["sessionTokens"], dbRows: counts.Total(), dbName: name}
	db.Exec("ANALYZE TABLE sessionTokens")
	var tableBytes int64
	b.admin.QueryRow("SELECT data_length + index_length FROM information_schema.TABLES WHERE table_schema = ? AND table_name = 'sessionTokens'", name).Scan(&tableBytes)
	res.tableMiB = float64(tableBytes) / (1 << 20)

	base1, rows, err := b.planBaseline(db)
	if err != nil {
		return nil, fmt.Errorf("baseline: %w", err)
	}
	out := filepath.Join(b.dir, fmt.Sprintf("plan-%d.parquet", sessions))
	wall, rss, _, err := b.run(b.dsn(name), append([]string{"plan", "--out", out, "--now", strconv.FormatInt(b.now.UnixMilli(), 10)}, planFlags...)...)
	if err != nil {
		return nil, err
	}
	base2, _, err := b.planBaseline(db)
	if err != nil {
		return nil, fmt.Errorf("baseline: %w", err)
	}
	meta, err := readMeta(out)
	if err != nil {
		return nil, err
	}
	st, _ := os.Stat(out)
	res.plan, res.baseline, res.baselineRows = wall, min(base1, base2), rows
	res.rssKiB, res.manifestRows, res.fileMiB, res.manifest = rss, meta.RowCount, float64(st.Size())/(1<<20), out
	fmt.Fprintf(os.Stderr, "plan %d sessions: %s (baselines %s, %s)\n", sessions, wall.Round(time.Millisecond), base1.Round(time.Millisecond), base2.Round(time.Millisecond))
	return res, nil
}

// planBaseline does plan's job with nothing but the driver: every statement
// plan needs, each run once, unpaged and streamed, with no ORDER BY where
// plan's order is not needed to get the answer, so the server reads each
// table the fastest way it knows; in one consistent snapshot, as plan. It
// writes nothing and keeps nothing. It returns its time and the rows it
// read.
func (b *bench) planBaseline(db *sql.DB) (time.Duration, int64, error) {
	conn, err := db.Conn(b.ctx)
	if err != nil {
		return 0, 0, err
	}
	defer conn.Close()
	cutoff := b.now.Add(-30 * day).UnixMilli()
	t0 := time.Now()
	if _, err := conn.ExecContext(b.ctx, "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY"); err != nil {
		return 0, 0, err
	}
	defer conn.ExecContext(b.ctx, "ROLLBACK")
	var n int64
	drain := func(q string, args ...any) error {
		rows, err := conn.QueryContext(b.ctx, q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		var a, c []byte
		var v int64
		for rows.Next() {
			if err := rows.Scan(&a, &c, &v); err != nil {
				return err
			}
			n++
		}
		return rows.Err()
	}
	// max-sessions: the large accounts, then each one's oldest sessions.
	rows, err := conn.QueryContext(b.ctx, "SELECT uid, COUNT(*) AS n FROM sessionTokens GROUP BY uid HAVING COUNT(*) > ? ORDER BY n DESC, uid LIMIT ?", 5000, 100)
	if err != nil {
		return 0, 0, err
	}
	type acct struct {
		uid []byte
		n   int64
	}
	var accts []acct
	for rows.Next() {
		var a acct
		if err := rows.Scan(&a.uid, &a.n); err != nil {
			rows.Close()
			return 0, 0, err
		}
		accts = append(accts, a)
	}
	rows.Close()
	for _, a := range accts {
		if err := drain("SELECT tokenId, uid, createdAt FROM sessionTokens WHERE uid = ? ORDER BY createdAt, tokenId LIMIT ?", a.uid, min(a.n-5000, 100000)); err != nil {
			return 0, 0, err
		}
	}
	for _, q := range []string{
		"SELECT tokenId, uid, createdAt FROM accountResetTokens WHERE createdAt < ?",
		"SELECT tokenId, uid, createdAt FROM passwordForgotTokens WHERE createdAt < ?",
		"SELECT tokenId, uid, createdAt FROM passwordChangeTokens WHERE createdAt < ?",
		"SELECT t.tokenId, t.uid, t.createdAt FROM sessionTokens t LEFT JOIN devices d ON d.uid = t.uid AND d.sessionTokenId = t.tokenId WHERE t.createdAt < ? AND d.uid IS NULL",
		"SELECT unblockCodeHash, uid, createdAt FROM unblockCodes WHERE createdAt < ?",
		"SELECT hash, uid, createdAt FROM signinCodes WHERE createdAt < ?",
	} {
		if err := drain(q, cutoff); err != nil {
			return 0, 0, err
		}
	}
	return time.Since(t0), n, nil
}

func (b *bench) flushPlan(results []*planResult) {
	fmt.Println("## plan")
	fmt.Println()
	fmt.Println("Flags: --maxTokenAge 30-days --maxCodeAge 30-days --maxSessions 5000 --maxSessionsMaxAccounts 100 --maxSessionsMaxDeletions 100000.")
	fmt.Println("Baseline: the same job with nothing but the driver: every statement plan needs (the large-accounts GROUP BY, each large account's oldest sessions, the three token tables, the device anti-join on sessionTokens, the two code tables), each run once, unpaged, streamed, without ORDER BY where plan's order is not needed, in one consistent snapshot; nothing written. It runs before and after plan; the faster run counts.")
	fmt.Println()
	fmt.Println("| session tokens (table + indexes) | rows in db | manifest rows | plan | baseline (rows read) | plan speed / baseline | manifest rows/s | µs per manifest row | plan peak RSS (VmHWM) | manifest size |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range results {
		fmt.Printf("| %d (%.0f MiB) | %d | %d | %.2fs | %.2fs (%d) | %.2f | %.0f | %.2f | %.1f MiB | %.1f MiB |\n",
			r.sessions, r.tableMiB, r.dbRows, r.manifestRows, r.plan.Seconds(), r.baseline.Seconds(), r.baselineRows,
			r.baseline.Seconds()/r.plan.Seconds(), float64(r.manifestRows)/r.plan.Seconds(),
			perRowMicros(r), float64(r.rssKiB)/1024, r.fileMiB)
	}
	if len(results) >= 2 {
		first, last := results[0], results[len(results)-1]
		fmt.Printf("\nTime per manifest row at %d sessions / at %d sessions: %.2f.\n", last.sessions, first.sessions, perRowMicros(last)/perRowMicros(first))
	}
	fmt.Println()
}

func perRowMicros(r *planResult) float64 {
	return float64(r.plan.Microseconds()) / float64(r.manifestRows)
}
