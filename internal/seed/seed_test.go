package seed_test

import (
	"context"
	"testing"
	"time"

	"prune-tokens/internal/seed"
	"prune-tokens/internal/test/dbtest"
)

var now = time.Date(2026, 1, 15, 12, 0, 0, 0, time.UTC).UnixMilli()

const day = int64(24 * time.Hour / time.Millisecond)

func insert(t *testing.T, d *dbtest.DB, cfg seed.Config) seed.Counts {
	t.Helper()
	start := time.Now()
	n, err := seed.Insert(context.Background(), d.SQL, cfg)
	if err != nil {
		t.Fatalf("Insert: %v", err)
	}
	el := time.Since(start)
	t.Logf("%d rows in %v (%.0f rows/s)", n.Total(), el.Round(time.Millisecond), float64(n.Total())/el.Seconds())
	return n
}

func scalar(t *testing.T, d *dbtest.DB, q string, args ...any) int64 {
	t.Helper()
	var v int64
	if err := d.SQL.QueryRow(q, args...).Scan(&v); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return v
}

// The generator is the shared fixture of the sandbox, the demo and the
// benchmarks: the same Config must give byte-identical tables, and a
// different seed different ones.
func TestInsertIsDeterministic(t *testing.T) {
	cfg := seed.DefaultConfig(7, now)
	cfg.Accounts = 800
	cfg.HeavySessions = 300
	cfg.ChunkRows = 500
	a, b, c := dbtest.New(t), dbtest.New(t), dbtest.New(t)
	insert(t, a, cfg)
	cfg.ChunkRows = 37 // chunking and insert order must not change the data
	cfg.KeyOrder = true
	insert(t, b, cfg)
	cfg.Seed = 8
	insert(t, c, cfg)
	sa, sb, sc := a.Checksums(t), b.Checksums(t), c.Checksums(t)
	for _, tbl := range dbtest.Tables {
		if sa[tbl] != sb[tbl] {
			t.Errorf("%s: same seed, different CHECKSUM TABLE: %d vs %d", tbl, sa[tbl], sb[tbl])
		}
		if sa[tbl] == sc[tbl] {
			t.Errorf("%s: seeds 7 and 8 gave the same CHECKSUM TABLE %d", tbl, sa[tbl])
		}
	}
}

// The default data set has the mix the demo and the benchmarks rely on.
func TestDefaultMix(t *testing.T) {
	d := dbtest.New(t)
	cfg := seed.DefaultConfig(1, now)
	got := insert(t, d, cfg)
	want, err := seed.Predict(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, tbl := range dbtest.Tables {
		rows := int64(d.Count(t, tbl))
		if got[tbl] != rows || want[tbl] != rows {
			t.Errorf("%s: table has %d rows, Insert reported %d, Predict %d", tbl, rows, got[tbl], want[tbl])
		}
		if rows == 0 {
			t.Errorf("%s: no rows", tbl)
		}
	}
	// Enough rows for every rule to show, few enough for the sandbox to
	// delete in seconds (see DefaultConfig).
	if total := got.Total(); total < 12_000 || total > 30_000 {
		t.Errorf("default data set has %d rows, want 12,000 to 30,000", total)
	}

	sessions := float64(got["sessionTokens"])
	within := func(what string, n int64, share, tol float64) {
		t.Helper()
		if f := float64(n) / sessions; f < share-tol || f > share+tol {
			t.Errorf("%s: %.3f of sessions, want %.3f ± %.2f", what, f, share, tol)
		}
	}
	within("sessions with a device", scalar(t, d, `SELECT COUNT(*) FROM sessionTokens s
		WHERE EXISTS (SELECT 1 FROM devices d WHERE d.uid = s.uid AND d.sessionTokenId = s.tokenId)`), cfg.DeviceShare, 0.03)
	within("sessions with an unverifiedTokens row", scalar(t, d, `SELECT COUNT(*) FROM sessionTokens s
		JOIN unverifiedTokens u ON u.tokenId = s.tokenId AND u.uid = s.uid`), cfg.UnverifiedShare, 0.03)
	if n := scalar(t, d, `SELECT COUNT(*) FROM unverifiedTokens u
		WHERE NOT EXISTS (SELECT 1 FROM sessionTokens s WHERE s.tokenId = u.tokenId)`); n != 0 {
		t.Errorf("%d unverifiedTokens rows without their session", n)
	}

	// A few accounts far above any sensible maxSessions, then a long tail.
	heavy := scalar(t, d, `SELECT COUNT(*) FROM (SELECT uid FROM sessionTokens GROUP BY uid HAVING COUNT(*) >= ?) x`,
		cfg.HeavySessions-cfg.HeavySessions/10)
	if heavy != int64(cfg.HeavyAccounts) {
		t.Errorf("%d accounts with >= %d sessions, want the %d heavy ones", heavy, cfg.HeavySessions-cfg.HeavySessions/10, cfg.HeavyAccounts)
	}
	over100 := scalar(t, d, `SELECT COUNT(*) FROM (SELECT uid FROM sessionTokens GROUP BY uid HAVING COUNT(*) > 100) x`)
	single := scalar(t, d, `SELECT COUNT(*) FROM (SELECT uid FROM sessionTokens GROUP BY uid HAVING COUNT(*) = 1) x`)
	if over100 <= heavy || single < int64(cfg.Accounts)/3 {
		t.Errorf("tail: %d accounts over 100 sessions (want more than the %d heavy), %d with one session", over100, heavy, single)
	}
	if ties := scalar(t, d, `SELECT COUNT(*) FROM (SELECT uid, createdAt FROM sessionTokens GROUP BY uid, createdAt HAVING COUNT(*) > 1) x`); ties == 0 {
		t.Error("no two sessions of an account share a createdAt: the tie-break by tokenId is never exercised")
	}

	// Ages on both sides of a 30-day cutoff in every table that has one,
	// and nothing at or after now.
	cut := now - 30*day
	for _, tbl := range []string{"sessionTokens", "accountResetTokens", "passwordForgotTokens",
		"passwordChangeTokens", "keyFetchTokens", "unblockCodes", "signinCodes"} {
		old := scalar(t, d, "SELECT COUNT(*) FROM `"+tbl+"` WHERE createdAt < ?", cut)
		young := scalar(t, d, "SELECT COUNT(*) FROM `"+tbl+"` WHERE createdAt >= ?", cut)
		future := scalar(t, d, "SELECT COUNT(*) FROM `"+tbl+"` WHERE createdAt >= ?", now)
		if old == 0 || young == 0 || future != 0 {
			t.Errorf("%s: %d older than 30 days, %d younger, %d at or after now", tbl, old, young, future)
		}
	}
	if n := scalar(t, d, "SELECT COUNT(*) FROM devices WHERE sessionTokenId IS NULL"); n == 0 {
		t.Error("no device without a session")
	}
}

// Scaled sizes the benchmark's data set: about the asked number of
// sessions, and at 1,000,000 heavy accounts of at least 100,000 each.
func TestScaled(t *testing.T) {
	for _, target := range []int{10_000, 200_000} {
		cfg := seed.Scaled(3, now, target)
		n, err := seed.Predict(cfg)
		if err != nil {
			t.Fatal(err)
		}
		got := float64(n["sessionTokens"])
		if got < 0.9*float64(target) || got > 1.1*float64(target) {
			t.Errorf("Scaled(%d): %v sessions", target, got)
		}
	}
	// Generating a million sessions takes seconds under -race: check the
	// sizing arithmetic instead (a heavy account has at least
	// HeavySessions - HeavySessions/10 sessions).
	cfg := seed.Scaled(3, now, 1_000_000)
	if least := cfg.HeavySessions - cfg.HeavySessions/10; cfg.HeavyAccounts < 2 || least < 100_000 {
		t.Errorf("Scaled(1,000,000): %d heavy accounts, the smallest may have %d sessions", cfg.HeavyAccounts, least)
	}
}

func TestBadConfig(t *testing.T) {
	d := dbtest.New(t)
	for name, mut := range map[string]func(*seed.Config){
		"no now":          func(c *seed.Config) { c.Now = 0 },
		"share above 1":   func(c *seed.Config) { c.DeviceShare = 1.5 },
		"zero chunk":      func(c *seed.Config) { c.ChunkRows = 0 },
		"age before 1970": func(c *seed.Config) { c.CodeMaxAge = now + 1 },
	} {
		cfg := seed.DefaultConfig(1, now)
		mut(&cfg)
		if _, err := seed.Insert(context.Background(), d.SQL, cfg); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	for _, tbl := range dbtest.Tables {
		if n := d.Count(t, tbl); n != 0 {
			t.Errorf("a refused config inserted %d rows into %s", n, tbl)
		}
	}
}

// Insert stops at a cancelled context and reports what it did insert.
func TestInsertCancelled(t *testing.T) {
	d := dbtest.New(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	n, err := seed.Insert(ctx, d.SQL, seed.DefaultConfig(1, now))
	if err == nil {
		t.Fatal("no error from a cancelled context")
	}
	if rows := d.Count(t, "sessionTokens"); int64(rows) != n["sessionTokens"] {
		t.Errorf("table has %d sessions, Insert reported %d", rows, n["sessionTokens"])
	}
}
