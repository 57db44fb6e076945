package seed

import (
	"bytes"
	"context"
	"fmt"
	"slices"
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

// pkColumns is how many leading columns of each table's list above form its
// primary key (all BINARY, so byte order is key order).
var pkColumns = map[string]int{"devices": 2, "unblockCodes": 2}

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
	stmts  map[string]string  // full-chunk statement text, built once per table
	sorted map[string][][]any // with Config.KeyOrder: every row, until flushAll
}

func newWriter(ctx context.Context, db Execer, chunk int, keyOrder bool) *writer {
	w := &writer{ctx: ctx, db: db, chunk: chunk, bufs: map[string][]any{}, n: map[string]int{},
		counts: Counts{}, stmts: map[string]string{}}
	if keyOrder {
		w.sorted = map[string][][]any{}
	}
	return w
}

func (w *writer) add(table string, vals ...any) {
	if w.err != nil {
		return
	}
	if len(vals) != len(columns[table]) {
		panic(fmt.Sprintf("seed: %d values for %d columns of %s", len(vals), len(columns[table]), table))
	}
	if w.sorted != nil {
		w.sorted[table] = append(w.sorted[table], vals)
		return
	}
	w.bufs[table] = append(w.bufs[table], vals...)
	w.n[table]++
	if w.n[table] >= w.chunk {
		w.flush(table)
	}
}

func (w *writer) flushAll() {
	for _, t := range flushOrder {
		if w.sorted != nil {
			w.addSorted(t)
		}
		w.flush(t)
	}
}

// addSorted sends a table's buffered rows through the chunked path in
// primary-key order.
func (w *writer) addSorted(table string) {
	rows := w.sorted[table]
	delete(w.sorted, table)
	k := max(1, pkColumns[table])
	slices.SortFunc(rows, func(a, b []any) int {
		for i := 0; i < k; i++ {
			if c := bytes.Compare(a[i].([]byte), b[i].([]byte)); c != 0 {
				return c
			}
		}
		return 0
	})
	for _, r := range rows {
		if w.err != nil {
			return
		}
		w.bufs[table] = append(w.bufs[table], r...)
		w.n[table]++
		if w.n[table] >= w.chunk {
			w.flush(table)
		}
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
