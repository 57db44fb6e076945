package applier

import (
	"context"
	"errors"
	"fmt"

	"github.com/go-sql-driver/mysql"

	"prune-tokens/manifest"
)

// privilegeErrors are the server's "you may not" answers: table, column and
// database access denied.
var privilegeErrors = map[uint16]bool{1142: true, 1143: true, 1044: true, 1227: true}

// preflight EXPLAINs every kind of statement the remaining sections will
// send, with a dummy key. EXPLAIN needs the same privileges as the statement
// itself but executes nothing, so a user without DELETE (say, plan's
// read-only user) is refused before the first batch instead of failing at
// it. Errors other than a privilege refusal are left for the batches to meet
// and retry: some engines cannot EXPLAIN every statement.
func preflight(ctx context.Context, q querier, sections []manifest.Section) error {
	dummy := []manifest.Row{{ID: make([]byte, manifest.IDLen), UID: make([]byte, manifest.UIDLen)}}
	var missing []string
	seen := map[string]bool{}
	for _, sec := range sections {
		stmts, err := statementsFor(sec, dummy)
		if err != nil {
			return err
		}
		for _, s := range stmts {
			if seen[s.query] {
				continue
			}
			seen[s.query] = true
			rows, err := q.QueryContext(ctx, "EXPLAIN "+s.query, s.args...)
			if err == nil {
				rows.Close()
				continue
			}
			var me *mysql.MySQLError
			if errors.As(err, &me) && privilegeErrors[me.Number] {
				missing = append(missing, me.Message)
			}
		}
	}
	switch len(missing) {
	case 0:
		return nil
	case 1:
		return fmt.Errorf("the database user lacks privileges apply needs (docs/security.md: privileges): %s", missing[0])
	default:
		return fmt.Errorf("the database user lacks privileges apply needs (docs/security.md: privileges): %s (and %d more refusals)", missing[0], len(missing)-1)
	}
}

type statement struct {
	query string
	args  []any
}

// statementsFor lists every statement a batch of sec may send: the fast
// path's (deleteBatchFast) and the portable path's (deleteBatch).
func statementsFor(sec manifest.Section, rows []manifest.Row) ([]statement, error) {
	locked, err := lockedStatements(sec, rows)
	if err != nil {
		return nil, err
	}
	return append(fastStatements(sec, rows), locked...), nil
}

// fastStatements are the statements of deleteBatchFast (the read of the
// keys left only when rows are short). A table outside the allow-list
// yields none.
func fastStatements(sec manifest.Section, rows []manifest.Row) []statement {
	if sec.Table == manifest.TableSessionTokens && sec.Stage == manifest.StageTokenAge {
		q, args, _ := presentKeysSQL(sec.Table, rows)
		return append(guardedSessionsSQL(rows), statement{q, args})
	}
	if sec.Table == manifest.TableSessionTokens {
		sel, sargs := selectSessionsForDeleteSQL(rows)
		del, dargs := deleteSessionsSQL(sec.Stage, rows)
		return []statement{{sel, sargs}, {del, dargs}}
	}
	var out []statement
	if q, args, err := deleteExactSQL(sec.Table, rows); err == nil {
		out = append(out, statement{q, args})
	}
	if q, args, err := presentKeysSQL(sec.Table, rows); err == nil {
		out = append(out, statement{q, args})
	}
	return out
}

// lockedStatements are the statements of deleteBatch.
func lockedStatements(sec manifest.Section, rows []manifest.Row) ([]statement, error) {
	if sec.Table != manifest.TableSessionTokens {
		sel, sargs, err := selectRowsSQL(sec.Table, rows, true)
		if err != nil {
			return nil, err
		}
		del, dargs, err := deleteRowsSQL(sec.Table, rows)
		if err != nil {
			return nil, err
		}
		return []statement{{sel, sargs}, {del, dargs}}, nil
	}
	sel, sargs := selectSessionsSQL(rows, true)
	unv, uargs := deleteUnverifiedSQL(rows)
	del, dargs, err := deleteRowsSQL(sec.Table, rows)
	if err != nil {
		return nil, err
	}
	out := []statement{{sel, sargs}, {unv, uargs}, {del, dargs}}
	if sec.Stage == manifest.StageMaxSessions {
		dev, devArgs := deleteDevicesSQL(rows)
		out = append(out, statement{dev, devArgs})
	}
	return out, nil
}
