package metrics

import "strings"

// Every metric name prune-tokens sends is built here, from this table: the
// rest of the code speaks in events (see Sink).
//
// The old tool's names come from FxA's fxa-shared/db/models/auth/prune-tokens.ts
// (class PruneTokens) and fxa-auth-server/scripts/prune-tokens.ts: all of
// them counters (hot-shots increment), the .complete.* ones carrying a count
// and sent only when it is not zero, all under the StatsD prefix of the
// auth-server config (statsd.prefix, default "fxa-auth-server.").
const (
	// The token-age and code-age stages (the old prune procedure).
	PruneStart = "prune-tokens.start"
	PruneEnd   = "prune-tokens.end"
	PruneError = "prune-tokens.error"
	// PruneDeleted + table name + DeletedSuffix, e.g.
	// prune-tokens.complete.session-tokens-deleted.
	PruneDeleted  = "prune-tokens.complete."
	DeletedSuffix = "-deleted"

	// The max-sessions stage: finding the large accounts (plan) ...
	FindLargeStart    = "find-large-accounts.start"
	FindLargeEnd      = "find-large-accounts.end"
	FindLargeError    = "find-large-accounts.error"
	FindLargeAccounts = "find-large-accounts.complete.total-accounts"
	// ... and trimming them (apply; the old tool sent these per call of its
	// limitSessions procedure, one batch of one account; prune-tokens sends
	// them per max-sessions batch).
	LimitStart     = "limit-sessions.start"
	LimitEnd       = "limit-sessions.end"
	LimitError     = "limit-sessions.error"
	LimitDeletions = "limit-sessions.complete.total-deletions"

	// New: what the old tool could not say. Table names follow the dot.
	Gone           = "prune-tokens.already-gone."              // counter: listed rows no longer in the table
	Skipped        = "prune-tokens.skipped-by-guard."          // counter: listed rows a guard kept
	AlsoDeleted    = "prune-tokens.also-deleted."              // counter: unverified-tokens, devices deleted with their sessions
	BatchDuration  = "prune-tokens.batch.duration"             // timer (ms): one batch, commit included
	Throttle       = "prune-tokens.throttle."                  // timer (ms) + reason: time spent waiting
	RowsRemaining  = "prune-tokens.rows-remaining"             // gauge: manifest rows not processed yet
	CacheRemoved   = "prune-tokens.session-cache.removed"      // counter: sessions taken out of Redis
	CacheKeys      = "prune-tokens.session-cache.keys-deleted" // counter: Redis keys deleted (empty)
	CacheFailed    = "prune-tokens.session-cache.failed"       // counter: accounts left unclean
	UnverifiedName = "unverified-tokens"
	DevicesName    = "devices"
)

// tableNames maps the FxA tables to the old tool's spelling: its procedure's
// output names (@signInCodesDeleted...) with the @ dropped and camel case
// turned into kebab case.
var tableNames = map[string]string{
	"sessionTokens":        "session-tokens",
	"accountResetTokens":   "account-reset-tokens",
	"passwordForgotTokens": "password-forgot-tokens",
	"passwordChangeTokens": "password-change-tokens",
	"unblockCodes":         "unblock-codes",
	"signinCodes":          "sign-in-codes", // the old output was @signInCodesDeleted
}

// Stage names, as the manifest writes them.
const (
	StageMaxSessions = "max-sessions"
	StageTokenAge    = "token-age"
	StageCodeAge     = "code-age"
)

// tableName is the metric spelling of an FxA table; a table outside the
// list (none today) gets the same kebab-casing, never a name that breaks the
// StatsD line.
func tableName(table string) string {
	if n, ok := tableNames[table]; ok {
		return n
	}
	var b strings.Builder
	for i, r := range table {
		if r >= 'A' && r <= 'Z' {
			if i > 0 {
				b.WriteByte('-')
			}
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return clean(b.String())
}

// clean keeps a name part to lowercase letters, digits, '_' and single
// dashes: a reason from anywhere cannot break the StatsD line or the
// name's hierarchy.
func clean(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' {
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			dash = false
			b.WriteRune(r)
		} else {
			dash = true
		}
	}
	if b.Len() == 0 {
		return "unknown"
	}
	return b.String()
}
