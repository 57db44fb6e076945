package main

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"time"

	"prune-tokens/internal/seed"
)

// populate seeds db and reports what it did on log.
func populate(ctx context.Context, db *sql.DB, cfg seed.Config, log io.Writer) (seed.Counts, error) {
	start := time.Now()
	n, err := seed.Insert(ctx, db, cfg)
	if err != nil {
		return n, err
	}
	el := time.Since(start)
	fmt.Fprintf(log, "seeded %d rows (%d session tokens, %d accounts) in %v: %.0f rows/s\n",
		n.Total(), n["sessionTokens"], cfg.Accounts+cfg.HeavyAccounts, el.Round(time.Millisecond), float64(n.Total())/el.Seconds())
	return n, nil
}

// tables are the nine FxA tables, in the order of internal/schema/schema.sql.
var tables = []string{
	"sessionTokens", "unverifiedTokens", "devices",
	"accountResetTokens", "passwordForgotTokens", "passwordChangeTokens",
	"keyFetchTokens", "unblockCodes", "signinCodes",
}
