package seed

import (
	"context"
	"fmt"
	"strings"
)

// columns lists, per table, the columns Insert fills, in the order of the
// values gen passes to writer.add.
var columns = map[string][]string{
	"sessionTokens": {"tokenId", "tokenData", "uid", "createdAt", "uaBrowser", "uaBrowserVersion", "uaOS",
		"uaOSVersion", "uaDeviceType", "uaFormFactor", "lastAccessTime", "authAt", "verificationMethod",
		"verifiedAt", "mustVerify", "providerId"},
	"unverifiedTokens": {"tokenId", "tokenVerificationId", "uid", "mustVerify", "tokenVerificationCodeHash",
		"tokenVerificationCodeExpiresAt"},
	"devices": {"uid", "id", "sessionTokenId", "refreshTokenId", "nameUtf8", "type", "createdAt",
		"callbackURL", "callbackPublicKey", "callbackAuthKey", "callbackIsExpired"},
	"accountResetTokens":   {"tokenId", "tokenData", "uid", "createdAt", "verificationMethod"},
	"passwordForgotTokens": {"tokenId", "tokenData", "uid", "passCode", "createdAt", "tries", "verificationMethod"},
	"passwordChangeTokens": {"tokenId", "tokenData", "uid", "createdAt"},
	"keyFetchTokens":       {"tokenId", "authKey", "uid", "keyBundle", "createdAt"},
	"unblockCodes":         {"uid", "unblockCodeHash", "createdAt"},
	"signinCodes":          {"hash", "uid", "createdAt", "flowId"},
}

// flushOrder is the order of the final partial chunks.
var flushOrder = []string{"sessionTokens", "unverifiedTokens", "devices", "accountResetTokens",
	"passwordForgotTokens", "passwordChangeTokens", "keyFetchTokens", "unblockCodes", "signinCodes"}

// writer buffers rows per table and sends each full buffer as one
// multi-row INSERT with placeholders, which every MySQL dialect accepts.
// With no db it only counts, for Predict.
type writer struct {
	ctx    context.Context
	db     Execer
	chunk  int
	bufs   map[string][]any
	n      map[string]int
	counts Counts
	err    error
	stmts  map[string]string // full-chunk statement text, built once per table
}

func newWriter(ctx context.Context, db Execer, chunk int) *writer {
	return &writer{ctx: ctx, db: db, chunk: chunk, bufs: map[string][]any{}, n: map[string]int{},
		counts: Counts{}, stmts: map[string]string{}}
}

func (w *writer) add(table string, vals ...any) {
	if w.err != nil {
		return
	}
	if len(vals) != len(columns[table]) {
		panic(fmt.Sprintf("seed: %d values for %d columns of %s", len(vals), len(columns[table]), table))
	}
	w.bufs[table] = append(w.bufs[table], vals...)
	w.n[table]++
	if w.n[table] >= w.chunk {
		w.flush(table)
	}
}

func (w *writer) flushAll() {
	for _, t := range flushOrder {
		w.flush(t)
	}
}

func (w *writer) flush(table string) {
	n := w.n[table]
	if w.err != nil || n == 0 {
		return
	}
	if w.db != nil {
		q := w.stmts[table]
		if n != w.chunk || q == "" {
			q = insertSQL(table, n)
			if n == w.chunk {
				w.stmts[table] = q
			}
		}
		if _, err := w.db.ExecContext(w.ctx, q, w.bufs[table]...); err != nil {
			w.err = fmt.Errorf("seed: insert %d rows into %s: %w", n, table, err)
			return
		}
	} else if err := w.ctx.Err(); err != nil {
		w.err = err
		return
	}
	w.counts[table] += int64(n)
	w.bufs[table] = w.bufs[table][:0]
	w.n[table] = 0
}

func insertSQL(table string, rows int) string {
	cols := columns[table]
	one := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(cols)), ", ") + ")"
	var b strings.Builder
	b.Grow(len(table) + 30 + 20*len(cols) + rows*(len(one)+2))
	b.WriteString("INSERT INTO `" + table + "` (`" + strings.Join(cols, "`, `") + "`) VALUES ")
	for i := 0; i < rows; i++ {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(one)
	}
	return b.String()
}
