// Package planner decides which rows the six FxA pruning stages would delete
// and streams them, in manifest order, into a manifest.Writer. It only reads:
// every statement runs inside one read-only, consistent-snapshot transaction
// on one pinned connection, so the stages see the same data and their counts
// add up even while the service keeps writing.
package planner

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"prune-tokens/internal/dbconn"
	"prune-tokens/manifest"
)

// Options are the planning rules. Zero ages and a zero MaxSessions turn
// their stages off, as in the old tool.
type Options struct {
	Now                     int64 // planning instant, ms since the epoch
	MaxTokenAge             time.Duration
	MaxCodeAge              time.Duration
	MaxSessions             int64
	MaxSessionsMaxAccounts  int64
	MaxSessionsMaxDeletions int64
	// MaxTokenAgeWindowSize caps the session tokens the token-age stage
	// lists to the oldest this many; 0 means no cap. The other token tables
	// are small (one row per account at most) and are not capped.
	MaxTokenAgeWindowSize int64
	// Observer, when set, hears of the search for large accounts (the old
	// tool's find-large-accounts metrics).
	Observer Observer

	// afterStage, set by this package's tests, runs after each stage, so
	// a test can change the database between stages.
	afterStage func(stage string)
}

// Observer hears of planning events.
type Observer interface {
	LargeAccountsStart()
	LargeAccountsEnd(accounts int, err error)
}

// Result is what planning found besides the rows themselves (which went to
// the writer).
type Result struct {
	TokenCutoff int64 // ms; 0 when token-age is off
	CodeCutoff  int64 // ms; 0 when code-age is off
	// TopAccounts are the accounts max-sessions trims, in manifest order.
	TopAccounts []manifest.Account
	Rows        int64
	// SnapshotFallback is true when the server refused START TRANSACTION
	// WITH CONSISTENT SNAPSHOT and a plain read-only transaction was used.
	SnapshotFallback bool
}

// Validate checks options that no flag parser can rule out.
func (o Options) Validate() error {
	switch {
	case o.Now <= 0:
		return fmt.Errorf("now must be a positive number of milliseconds, got %d", o.Now)
	case o.MaxTokenAge < 0:
		return fmt.Errorf("maxTokenAge must not be negative")
	case o.MaxCodeAge < 0:
		return fmt.Errorf("maxCodeAge must not be negative")
	case o.MaxSessions < 0, o.MaxSessionsMaxAccounts < 0, o.MaxSessionsMaxDeletions < 0, o.MaxTokenAgeWindowSize < 0:
		return fmt.Errorf("session limits must not be negative")
	}
	return nil
}

// Cutoffs returns the absolute cutoffs the ages give at Now; 0 means the
// stage is off.
func (o Options) Cutoffs() (token, code int64) {
	if o.MaxTokenAge > 0 {
		token = o.Now - o.MaxTokenAge.Milliseconds()
	}
	if o.MaxCodeAge > 0 {
		code = o.Now - o.MaxCodeAge.Milliseconds()
	}
	return token, code
}

// Plan runs the stages against db and writes every row they list to w, in
// manifest order. It neither commits nor aborts w: the caller does, with the
// metadata it owns. On error the rows written so far are incomplete and the
// caller must Abort. When ctx ends, the statement running on the server is
// stopped too (its connection is killed from another one) before Plan
// returns.
func Plan(ctx context.Context, db *sql.DB, opts Options, w *manifest.Writer) (*Result, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("get a connection: %w", err)
	}
	var connID int64
	if err := conn.QueryRowContext(ctx, "SELECT CONNECTION_ID()").Scan(&connID); err != nil {
		closeConn(conn, false)
		return nil, fmt.Errorf("read connection id: %w", err)
	}
	stopWatch := killOnCancel(ctx, db, connID)
	s, err := begin(ctx, conn)
	if err != nil {
		killed := stopWatch()
		closeConn(conn, false)
		return nil, errOrCancel(ctx, killed, err)
	}
	p := &planner{ctx: ctx, q: conn, opts: opts, w: w, res: &Result{SnapshotFallback: s.fallback}}
	p.res.TokenCutoff, p.res.CodeCutoff = opts.Cutoffs()
	err = p.run()
	killed := stopWatch()
	if killed {
		closeConn(conn, false)
		return nil, errOrCancel(ctx, killed, err)
	}
	// The transaction only ever read, so ending it cannot lose anything; a
	// connection whose rollback failed is not returned to the pool.
	rbErr := s.end(context.WithoutCancel(ctx))
	closeConn(conn, rbErr == nil)
	if err != nil {
		return nil, err
	}
	p.res.Rows = w.Rows()
	return p.res, nil
}

// errOrCancel prefers the context's error once the connection was killed
// for it: the statement's own error then only says it was interrupted.
func errOrCancel(ctx context.Context, killed bool, err error) error {
	if killed && ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// killTimeout bounds the KILL sent when plan is cancelled.
const killTimeout = 5 * time.Second

// killOnCancel watches ctx while a plan runs on connection connID. The driver
// answers a cancelled context by closing its socket, but the server goes on
// with the statement (a GROUP BY over the whole table, a long scan) and
// keeps the snapshot open until it next writes to the client; so on
// cancellation this kills the connection from another one. The returned
// stop ends the watch and reports whether it killed; once it returns, no
// KILL is in flight.
func killOnCancel(ctx context.Context, db *sql.DB, connID int64) (stop func() (killed bool)) {
	done := make(chan struct{})
	result := make(chan bool, 1)
	go func() {
		select {
		case <-done:
			result <- false
		case <-ctx.Done():
			kctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), killTimeout)
			defer cancel()
			// The id is the server's own integer; KILL takes no placeholder
			// on every engine.
			if _, err := db.ExecContext(kctx, fmt.Sprintf("KILL CONNECTION %d", connID)); err == nil {
				awaitGone(kctx, db, connID)
			}
			result <- true
		}
	}()
	return func() bool {
		close(done)
		return <-result
	}
}

// awaitGone waits until the killed connection has left the server's process
// list. KILL only marks the thread; the thread notices at its next check (a
// lock wait wakes, a scan reaches its next row), so without this wait plan
// could return while its statement, and its snapshot, still run.
func awaitGone(ctx context.Context, db *sql.DB, connID int64) {
	for {
		var n int
		err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = ?", connID).Scan(&n)
		if err != nil || n == 0 {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
}

type snapshot struct {
	conn     *sql.Conn
	fallback bool
}

// begin starts the read-only snapshot on the pinned connection. database/sql's
// BeginTx cannot ask for WITH CONSISTENT SNAPSHOT, so the statements are
// issued by hand. REPEATABLE READ is set first because a server whose
// default is READ COMMITTED would otherwise take a new snapshot per
// statement. A server that rejects the snapshot form (go-mysql-server
// v0.20.0 refuses "WITH CONSISTENT SNAPSHOT, READ ONLY") gets a plain
// read-only transaction and Result.SnapshotFallback is set so the operator
// is told: go-mysql-server's memory tables do not isolate reads from
// concurrent writers, which is acceptable only for the single-client sandbox.
func begin(ctx context.Context, conn *sql.Conn) (*snapshot, error) {
	s := &snapshot{conn: conn}
	if _, err := conn.ExecContext(ctx, "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ"); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("set isolation level: %w", ctx.Err())
		}
		s.fallback = true
	}
	// A session left below REPEATABLE READ (the SET refused) would read a
	// new snapshot per statement, whatever START TRANSACTION says.
	if level, err := dbconn.IsolationLevel(ctx, conn); err != nil || !dbconn.Repeatable(level) {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("read isolation level: %w", ctx.Err())
		}
		s.fallback = true
	}
	if _, err := conn.ExecContext(ctx, "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY"); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("start snapshot: %w", ctx.Err())
		}
		s.fallback = true
		if _, err2 := conn.ExecContext(ctx, "START TRANSACTION READ ONLY"); err2 != nil {
			return nil, fmt.Errorf("start a read-only snapshot transaction: %w (and with CONSISTENT SNAPSHOT: %v)", err2, err)
		}
	}
	return s, nil
}

func (s *snapshot) end(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := s.conn.ExecContext(ctx, "ROLLBACK")
	return err
}

// closeConn returns conn to the pool, or discards it when its session state
// is unknown (a transaction may still be open on it).
func closeConn(conn *sql.Conn, reusable bool) {
	if !reusable {
		_ = conn.Raw(func(any) error { return driver.ErrBadConn })
	}
	conn.Close()
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

type planner struct {
	ctx  context.Context
	q    querier
	opts Options
	w    *manifest.Writer
	res  *Result
	// claimed is, per account max-sessions trims, the last (newest) session
	// it listed. Max-sessions lists each account's oldest sessions in
	// (createdAt, tokenId) order, so in one snapshot a session is listed by
	// it exactly when its uid is here and it sorts at or before that row:
	// token-age can skip those without remembering every tokenId.
	claimed map[[manifest.UIDLen]byte]position
	// claimedRows is how many sessions max-sessions listed.
	claimedRows int64
}

type position struct {
	createdAt int64
	key       []byte
}

func (p *planner) run() error {
	if p.opts.MaxSessions > 0 {
		if err := p.maxSessions(); err != nil {
			return fmt.Errorf("max-sessions: %w", err)
		}
	}
	if p.opts.afterStage != nil {
		p.opts.afterStage(manifest.StageMaxSessions)
	}
	if p.res.TokenCutoff != 0 {
		if err := p.tokenAge(); err != nil {
			return fmt.Errorf("token-age: %w", err)
		}
	}
	if p.res.CodeCutoff != 0 {
		if err := p.codeAge(); err != nil {
			return fmt.Errorf("code-age: %w", err)
		}
	}
	return nil
}

// maxSessions finds the largest accounts (stage 1) and lists, per account,
// its sessions beyond the newest MaxSessions, oldest first (stage 2).
func (p *planner) maxSessions() error {
	accounts, err := p.largeAccounts()
	if err != nil {
		return err
	}
	p.claimed = make(map[[manifest.UIDLen]byte]position, len(accounts))
	p.res.TopAccounts = make([]manifest.Account, 0, len(accounts))
	for _, a := range accounts {
		toDelete := min(a.n-p.opts.MaxSessions, p.opts.MaxSessionsMaxDeletions)
		p.res.TopAccounts = append(p.res.TopAccounts, manifest.Account{UID: hex.EncodeToString(a.uid), Sessions: a.n, ToDelete: toDelete})
		if toDelete <= 0 {
			continue
		}
		// The count is exact in this snapshot, so the oldest n-maxSessions
		// rows are precisely the ones beyond the newest maxSessions. There
		// is no (uid, createdAt) index: the server sorts this one account's
		// sessions, which is bounded by the account, not the table.
		rows, err := p.q.QueryContext(p.ctx,
			"SELECT tokenId, createdAt FROM sessionTokens WHERE uid = ? ORDER BY createdAt, tokenId LIMIT ?",
			a.uid, toDelete)
		if err != nil {
			return fmt.Errorf("list sessions of account %x: %w", a.uid, err)
		}
		var last manifest.Row
		for rows.Next() {
			r := manifest.Row{Stage: manifest.StageMaxSessions, Table: manifest.TableSessionTokens, UID: a.uid}
			if err := rows.Scan(&r.ID, &r.CreatedAt); err != nil {
				rows.Close()
				return fmt.Errorf("list sessions of account %x: %w", a.uid, err)
			}
			if err := p.write(r); err != nil {
				rows.Close()
				return err
			}
			last = r
			p.claimedRows++
		}
		if err := closeRows(rows, fmt.Sprintf("list sessions of account %x", a.uid)); err != nil {
			return err
		}
		if last.ID != nil {
			var k [manifest.UIDLen]byte
			copy(k[:], a.uid)
			p.claimed[k] = position{last.CreatedAt, last.ID}
		}
	}
	return nil
}

// account is a large account and its number of sessions.
type account struct {
	uid []byte
	n   int64
}

// largeAccounts is stage 1: the accounts with more than MaxSessions
// sessions, most first, at most MaxSessionsMaxAccounts of them. The GROUP BY
// reads the whole session_uid index once; the old tool's comment said "call
// sparingly", and plan calls it exactly once.
func (p *planner) largeAccounts() (accounts []account, err error) {
	if o := p.opts.Observer; o != nil {
		o.LargeAccountsStart()
		defer func() { o.LargeAccountsEnd(len(accounts), err) }()
	}
	rows, err := p.q.QueryContext(p.ctx,
		"SELECT uid, COUNT(*) AS n FROM sessionTokens GROUP BY uid HAVING COUNT(*) > ? ORDER BY n DESC, uid LIMIT ?",
		p.opts.MaxSessions, p.opts.MaxSessionsMaxAccounts)
	if err != nil {
		return nil, fmt.Errorf("find large accounts: %w", err)
	}
	for rows.Next() {
		var a account
		if err := rows.Scan(&a.uid, &a.n); err != nil {
			rows.Close()
			return nil, fmt.Errorf("find large accounts: %w", err)
		}
		accounts = append(accounts, a)
	}
	if err := closeRows(rows, "find large accounts"); err != nil {
		return nil, err
	}
	return accounts, nil
}

// isClaimed reports whether max-sessions already listed the session r.
func (p *planner) isClaimed(r manifest.Row) bool {
	var k [manifest.UIDLen]byte
	copy(k[:], r.UID)
	pos, ok := p.claimed[k]
	if !ok {
		return false
	}
	if r.CreatedAt != pos.createdAt {
		return r.CreatedAt < pos.createdAt
	}
	return string(r.ID) <= string(pos.key)
}

// ageTable describes one table the age stages read in primary-key order.
// Columns are named through the alias t.
type ageTable struct {
	stage, table string
	// cols selects id, uid, createdAt in that order.
	cols string
	// pk are the primary-key columns in index order.
	pk []string
	// join and extra add a join and a filter (sessionTokens: no device).
	join, extra string
	// extraArgs are the values of extra's placeholders.
	extraArgs []any
	// skip drops rows another stage already listed.
	skip func(manifest.Row) bool
}

func (p *planner) tokenAge() error {
	simple := func(table string) ageTable {
		return ageTable{stage: manifest.StageTokenAge, table: table, cols: "t.tokenId, t.uid, t.createdAt", pk: []string{"tokenId"}}
	}
	tables := []ageTable{
		simple(manifest.TableAccountResetTokens),
		simple(manifest.TablePasswordForgotTokens),
		simple(manifest.TablePasswordChangeTokens),
	}
	sessions := simple(manifest.TableSessionTokens)
	// An anti-join rather than NOT EXISTS: MariaDB materializes a NOT EXISTS
	// subquery by scanning all of devices for every statement, while the
	// LEFT JOIN is one eq_ref probe of UQ_devices_sessionTokenId (uid,
	// sessionTokenId) per session. Naming uid is what lets it use that
	// index, and is the rule: a device under another uid does not protect
	// the session. devices.uid is NOT NULL, so NULL means "no device".
	sessions.join = sessionDeviceJoin
	sessions.extra = "d.uid IS NULL"
	sessions.skip = p.isClaimed
	if n := p.opts.MaxTokenAgeWindowSize; n > 0 {
		bound, ok, err := p.windowBound(n)
		if err != nil {
			return err
		}
		// Past the oldest n eligible sessions: everything up to and
		// including the nth in (createdAt, tokenId) order, no more.
		if ok {
			sessions.extra += " AND (t.createdAt < ? OR (t.createdAt = ? AND t.tokenId <= ?))"
			sessions.extraArgs = []any{bound.CreatedAt, bound.CreatedAt, bound.ID}
		}
	}
	tables = append(tables, sessions)
	for _, t := range tables {
		if err := p.scanAge(t, p.res.TokenCutoff); err != nil {
			return err
		}
	}
	return nil
}

const sessionDeviceJoin = "LEFT JOIN devices d ON d.uid = t.uid AND d.sessionTokenId = t.tokenId"

// windowBound finds the nth oldest session token the token-age stage
// lists, by (createdAt, tokenId), so that the primary-key scan can keep
// --maxTokenAgeWindowSize meaning "the oldest n". It reads along the
// createdAt index: n rows, plus at most the sessions max-sessions claimed
// (skipped here as there). ok is false when fewer than n qualify: then
// there is no bound.
func (p *planner) windowBound(n int64) (bound manifest.Row, ok bool, err error) {
	q := "SELECT t.tokenId, t.uid, t.createdAt FROM sessionTokens t " + sessionDeviceJoin +
		" WHERE t.createdAt < ? AND d.uid IS NULL ORDER BY t.createdAt, t.tokenId LIMIT ?"
	rows, err := p.q.QueryContext(p.ctx, q, p.res.TokenCutoff, n+p.claimedRows)
	if err != nil {
		return bound, false, fmt.Errorf("find the oldest %d session tokens: %w", n, err)
	}
	var listed int64
	for rows.Next() {
		r := manifest.Row{Stage: manifest.StageTokenAge, Table: manifest.TableSessionTokens}
		if err := rows.Scan(&r.ID, &r.UID, &r.CreatedAt); err != nil {
			rows.Close()
			return bound, false, fmt.Errorf("find the oldest %d session tokens: %w", n, err)
		}
		if p.isClaimed(r) {
			continue
		}
		if listed++; listed == n {
			bound, ok = r, true
			break
		}
	}
	// At most the claimed rows are left to drain: the LIMIT bounds them.
	if err := closeRows(rows, fmt.Sprintf("find the oldest %d session tokens", n)); err != nil {
		return bound, false, err
	}
	return bound, ok, nil
}

func (p *planner) codeAge() error {
	tables := []ageTable{
		{stage: manifest.StageCodeAge, table: manifest.TableUnblockCodes, cols: "t.unblockCodeHash, t.uid, t.createdAt",
			pk: []string{"uid", "unblockCodeHash"}},
		{stage: manifest.StageCodeAge, table: manifest.TableSigninCodes, cols: "t.hash, t.uid, t.createdAt",
			pk: []string{"hash"}},
	}
	for _, t := range tables {
		if err := p.scanAge(t, p.res.CodeCutoff); err != nil {
			return err
		}
	}
	return nil
}

// scanAge lists the rows of t with createdAt < cutoff in primary-key order,
// with one statement streamed row by row into the manifest: the server
// reads the table in one sequential pass of its clustered index (or sorts
// a covering index range, where it finds that cheaper) and memory does not
// grow with the rows. Such a statement may run for minutes on a large
// table; it is cancelled by killing the connection (see Plan), since the
// driver cannot stop a running statement.
func (p *planner) scanAge(t ageTable, cutoff int64) error {
	order := make([]string, len(t.pk))
	for i, c := range t.pk {
		order[i] = "t." + c
	}
	from := t.table + " t"
	if t.join != "" {
		from += " " + t.join
	}
	where := "t.createdAt < ?"
	if t.extra != "" {
		where += " AND " + t.extra
	}
	q := fmt.Sprintf("SELECT %s FROM %s WHERE %s ORDER BY %s", t.cols, from, where, strings.Join(order, ", "))
	if err := p.ctx.Err(); err != nil {
		return err
	}
	rows, err := p.q.QueryContext(p.ctx, q, append([]any{cutoff}, t.extraArgs...)...)
	if err != nil {
		return fmt.Errorf("read %s: %w", t.table, err)
	}
	for rows.Next() {
		r := manifest.Row{Stage: t.stage, Table: t.table}
		if err := rows.Scan(&r.ID, &r.UID, &r.CreatedAt); err != nil {
			rows.Close()
			return fmt.Errorf("read %s: %w", t.table, err)
		}
		if t.skip != nil && t.skip(r) {
			continue
		}
		if err := p.write(r); err != nil {
			rows.Close()
			return err
		}
	}
	return closeRows(rows, "read "+t.table)
}

func (p *planner) write(r manifest.Row) error {
	if err := p.ctx.Err(); err != nil {
		return err
	}
	if err := p.w.Write(r); err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	return nil
}

func closeRows(rows *sql.Rows, what string) error {
	err := rows.Err()
	if cerr := rows.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}
