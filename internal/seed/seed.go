// Package seed fills an FxA auth database (internal/schema/schema.sql) with
// synthetic but realistic data: the one generator behind the sandbox, the
// demo and the benchmarks. The same Config always produces the same rows.
package seed

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

const (
	day = int64(24 * time.Hour / time.Millisecond)

	// tailAlpha shapes the long tail of sessions per ordinary account: with a
	// Pareto exponent of 1.5 about 1 account in 1,000 has more than 100
	// sessions, as a handful of real power users and scripts do.
	tailAlpha = 1.5
)

// Config says what to generate. Start from DefaultConfig or Scaled and
// change fields; every field is used as given.
type Config struct {
	Seed int64 // drives every random choice
	Now  int64 // ms since the epoch; every createdAt lies before it

	Accounts        int // ordinary accounts: a long tail of sessions each
	NoSessionShare  float64
	MaxTailSessions int // cap on one ordinary account's sessions
	HeavyAccounts   int // a few accounts with very many sessions
	HeavySessions   int // sessions of the first heavy account; the others have up to 10% fewer

	// Ages are spread from Now back to these; sessions skew young (most
	// sessions are recent), the other tokens and the codes are uniform, so
	// a 30-day cutoff falls inside every table.
	SessionMaxAge int64 // ms
	TokenMaxAge   int64 // ms: accountReset/passwordForgot/passwordChange/keyFetch tokens
	CodeMaxAge    int64 // ms: unblockCodes, signinCodes

	DeviceShare     float64 // sessions with a devices row (same uid, sessionTokenId)
	UnverifiedShare float64 // sessions with an unverifiedTokens row
	TieShare        float64 // sessions created in the same ms as the account's previous one
	OrphanDevices   float64 // accounts with an extra device that has no session
	ResetShare      float64 // accounts with an accountResetTokens row (at most one: UNIQUE uid)
	ForgotShare     float64 // ... a passwordForgotTokens row
	ChangeShare     float64 // ... a passwordChangeTokens row
	KeyFetchMean    float64 // keyFetchTokens per account (never pruned)
	UnblockMean     float64 // unblockCodes per account
	SigninMean      float64 // signinCodes per account

	ChunkRows int // rows per INSERT statement

	// KeyOrder holds every row in memory, then inserts each table in
	// primary-key order. InnoDB then appends to its clustered indexes
	// instead of splitting random pages: much faster once the tables
	// outgrow the buffer pool, for holding every row in memory
	// (docs/benchmarks.md).
	KeyOrder bool
}

// DefaultConfig is the sandbox's and the demo's data set: about 16,000
// rows, 5,600 of them session tokens, three accounts far over any sensible
// maxSessions and one more over 100 sessions. It is kept this small because
// go-mysql-server's in-memory tables cost O(rows) per inserted or deleted
// row, so the demo's time grows with the square of its size
// (docs/benchmarks.md).
func DefaultConfig(seed, now int64) Config {
	return Config{
		Seed:            seed,
		Now:             now,
		Accounts:        2000,
		NoSessionShare:  0.1,
		MaxTailSessions: 2000,
		HeavyAccounts:   3,
		HeavySessions:   500,
		SessionMaxAge:   2 * 365 * day,
		TokenMaxAge:     90 * day,
		CodeMaxAge:      90 * day,
		DeviceShare:     1.0 / 3,
		UnverifiedShare: 1.0 / 5,
		TieShare:        0.02,
		OrphanDevices:   0.05,
		ResetShare:      0.05,
		ForgotShare:     0.1,
		ChangeShare:     0.05,
		KeyFetchMean:    0.8,
		UnblockMean:     1.2,
		SigninMean:      1.5,
		ChunkRows:       1000,
	}
}

// Scaled is DefaultConfig grown to about `sessions` session tokens, 30% of
// them in the heavy accounts (at least 100,000 each once sessions reaches
// 1,000,000), the rest spread over ordinary accounts.
func Scaled(seed, now int64, sessions int) Config {
	c := DefaultConfig(seed, now)
	heavy := sessions * 3 / 10
	c.HeavyAccounts = max(1, min(10, sessions/330_000))
	c.HeavySessions = heavy * 10 / 9 / c.HeavyAccounts // so even the smallest keeps heavy/HeavyAccounts
	c.Accounts = max(1, int(float64(sessions-heavy)/c.expectedTail()))
	return c
}

// expectedTail is the mean number of sessions of an ordinary account.
func (c Config) expectedTail() float64 {
	// E[floor(U^(-1/a))] truncated at MaxTailSessions, by summing P(n >= k).
	var mean float64
	for k := 1; k <= c.MaxTailSessions; k++ {
		mean += math.Pow(float64(k), -tailAlpha)
	}
	return mean * (1 - c.NoSessionShare)
}

func (c Config) validate() error {
	switch {
	case c.Now <= 0:
		return fmt.Errorf("seed: Now must be a time in ms since the epoch, got %d", c.Now)
	case c.Accounts < 0 || c.HeavyAccounts < 0 || c.HeavySessions < 0 || c.MaxTailSessions < 1:
		return fmt.Errorf("seed: negative account or session counts (or MaxTailSessions < 1)")
	case c.SessionMaxAge <= 0 || c.TokenMaxAge <= 0 || c.CodeMaxAge <= 0:
		return fmt.Errorf("seed: every MaxAge must be positive")
	case c.SessionMaxAge >= c.Now || c.TokenMaxAge >= c.Now || c.CodeMaxAge >= c.Now:
		return fmt.Errorf("seed: a MaxAge reaches before the epoch")
	case c.ChunkRows < 1:
		return fmt.Errorf("seed: ChunkRows must be at least 1")
	}
	for _, s := range []float64{c.NoSessionShare, c.DeviceShare, c.UnverifiedShare, c.TieShare,
		c.OrphanDevices, c.ResetShare, c.ForgotShare, c.ChangeShare} {
		if s < 0 || s > 1 {
			return fmt.Errorf("seed: share %v outside [0, 1]", s)
		}
	}
	for _, m := range []float64{c.KeyFetchMean, c.UnblockMean, c.SigninMean} {
		if m < 0 || m > 100 {
			return fmt.Errorf("seed: per-account mean %v outside [0, 100]", m)
		}
	}
	return nil
}

// Counts is the number of rows inserted per table.
type Counts map[string]int64

// Total is the number of rows over all tables.
func (c Counts) Total() int64 {
	var n int64
	for _, v := range c {
		n += v
	}
	return n
}

// Execer is what Insert writes through: *sql.DB, *sql.Conn or *sql.Tx.
type Execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// gen draws every value from one PCG stream in a fixed order, so the rows do
// not depend on chunking or on the database.
type gen struct {
	cfg Config
	r   *rand.Rand
}

func (g *gen) bytes(n int) []byte {
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := g.r.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

// ageUniform is a createdAt uniformly within maxAge before Now (never Now
// itself, so a zero cutoff distance never matters).
func (g *gen) ageUniform(maxAge int64) int64 {
	return g.cfg.Now - 1 - g.r.Int64N(maxAge)
}

// ageRecent skews towards Now: the age is maxAge*u², so about half the
// sessions are younger than a quarter of maxAge.
func (g *gen) ageRecent(maxAge int64) int64 {
	u := g.r.Float64()
	return g.cfg.Now - 1 - int64(u*u*float64(maxAge-1))
}

// poisson draws small per-account counts (means well below 100).
func (g *gen) poisson(mean float64) int {
	if mean <= 0 {
		return 0
	}
	l, k, p := math.Exp(-mean), 0, 1.0
	for {
		p *= g.r.Float64()
		if p <= l {
			return k
		}
		k++
	}
}

func (g *gen) tailSessions() int {
	if g.r.Float64() < g.cfg.NoSessionShare {
		return 0
	}
	u := 1 - g.r.Float64() // (0, 1]
	n := int(math.Pow(u, -1/tailAlpha))
	return min(n, g.cfg.MaxTailSessions)
}

var (
	browsers = []string{"Firefox", "Firefox", "Firefox", "Firefox Mobile", "Chrome", "Safari", "Firefox Focus"}
	oses     = []string{"Windows", "Windows", "Mac OS X", "Linux", "Android", "iOS"}
	devTypes = []string{"desktop", "desktop", "mobile", "tablet"}
)

func (g *gen) pick(s []string) string { return s[g.r.IntN(len(s))] }

// Insert generates cfg's data and inserts it with multi-row INSERTs of
// cfg.ChunkRows rows, one statement at a time on db. It returns the rows
// inserted per table, also when it stops on an error.
func Insert(ctx context.Context, db Execer, cfg Config) (Counts, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if db == nil {
		return nil, fmt.Errorf("seed: no database")
	}
	return run(ctx, db, cfg)
}

func run(ctx context.Context, db Execer, cfg Config) (Counts, error) {
	w := newWriter(ctx, db, cfg.ChunkRows, cfg.KeyOrder)
	g := &gen{cfg: cfg, r: rand.New(rand.NewPCG(uint64(cfg.Seed), 0x5eed_f0a5_70ce_2026))}
	total := cfg.HeavyAccounts + cfg.Accounts
	for a := 0; a < total && w.err == nil; a++ {
		sessions := 0
		if a < cfg.HeavyAccounts {
			sessions = cfg.HeavySessions
			if a > 0 {
				sessions -= g.r.IntN(cfg.HeavySessions/10 + 1)
			}
		} else {
			sessions = g.tailSessions()
		}
		g.account(w, sessions)
	}
	w.flushAll()
	return w.counts, w.err
}

// Predict returns the rows Insert would insert with cfg, without a database
// (it runs the same generator), so a benchmark can size its run in advance.
func Predict(cfg Config) (Counts, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return run(context.Background(), nil, cfg)
}

// account writes one account's rows; the order of random draws is fixed.
func (g *gen) account(w *writer, sessions int) {
	c := g.cfg
	uid := g.bytes(16)
	prevCreated := int64(0)
	for s := 0; s < sessions && w.err == nil; s++ {
		tokenID := g.bytes(32)
		created := g.ageRecent(c.SessionMaxAge)
		if s > 0 && g.r.Float64() < c.TieShare {
			created = prevCreated
		}
		prevCreated = created
		lastAccess := created + g.r.Int64N(c.Now-created)
		var verifiedAt, verificationMethod any
		mustVerify := g.r.IntN(4) == 0
		if g.r.IntN(3) > 0 {
			verifiedAt = created + g.r.Int64N(60_000)
			verificationMethod = g.r.IntN(3)
		}
		os := g.pick(oses)
		w.add("sessionTokens", tokenID, g.bytes(32), uid, created,
			g.pick(browsers), fmt.Sprintf("%d.0", 100+g.r.IntN(40)), os, fmt.Sprintf("%d", 10+g.r.IntN(8)),
			nil, nil, lastAccess, created, verificationMethod, verifiedAt, mustVerify, nil)
		if g.r.Float64() < c.DeviceShare {
			w.add("devices", uid, g.bytes(16), tokenID, nil, "Firefox on "+os, g.pick(devTypes),
				created, nil, nil, nil, false)
		}
		if g.r.Float64() < c.UnverifiedShare {
			w.add("unverifiedTokens", tokenID, g.bytes(16), uid, true, g.bytes(32), created+3_600_000)
		}
	}
	if g.r.Float64() < c.OrphanDevices {
		// A device signed in through OAuth only: no session to protect.
		w.add("devices", uid, g.bytes(16), nil, g.bytes(32), "Firefox Monitor", "mobile",
			g.ageUniform(c.SessionMaxAge), nil, nil, nil, false)
	}
	if g.r.Float64() < c.ResetShare {
		w.add("accountResetTokens", g.bytes(32), g.bytes(32), uid, g.ageUniform(c.TokenMaxAge), nil)
	}
	if g.r.Float64() < c.ForgotShare {
		w.add("passwordForgotTokens", g.bytes(32), g.bytes(32), uid, g.bytes(16),
			g.ageUniform(c.TokenMaxAge), g.r.IntN(3), nil)
	}
	if g.r.Float64() < c.ChangeShare {
		w.add("passwordChangeTokens", g.bytes(32), g.bytes(32), uid, g.ageUniform(c.TokenMaxAge))
	}
	for n := g.poisson(c.KeyFetchMean); n > 0; n-- {
		w.add("keyFetchTokens", g.bytes(32), g.bytes(32), uid, g.bytes(96), g.ageUniform(c.TokenMaxAge))
	}
	for n := g.poisson(c.UnblockMean); n > 0; n-- {
		w.add("unblockCodes", uid, g.bytes(32), g.ageUniform(c.CodeMaxAge))
	}
	for n := g.poisson(c.SigninMean); n > 0; n-- {
		var flowID any
		if g.r.IntN(2) == 0 {
			flowID = g.bytes(32)
		}
		w.add("signinCodes", g.bytes(32), uid, g.ageUniform(c.CodeMaxAge), flowID)
	}
}
