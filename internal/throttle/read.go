package throttle

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"

	"prune-tokens/internal/logging"
)

// HistoryStatus is the MariaDB status variable holding InnoDB's history
// list length (the purge backlog).
const HistoryStatus = "Innodb_history_list_length"

// historyMetricsSQL reads the same figure where the status variable does not
// exist (MySQL); it needs PROCESS.
const historyMetricsSQL = "SELECT `COUNT` FROM information_schema.INNODB_METRICS WHERE NAME = 'trx_rseg_history_len'"

// HasHistoryLength says whether the server reports InnoDB's history list
// length, as the status variable (MariaDB) or in INNODB_METRICS (MySQL): an
// engine without InnoDB (the go-mysql-server sandbox) reports neither.
func HasHistoryLength(ctx context.Context, db *sql.DB) bool {
	ctx, cancel := context.WithTimeout(ctx, DefaultReadTimeout)
	defer cancel()
	var name, value string
	if db.QueryRowContext(ctx, "SHOW GLOBAL STATUS LIKE '"+HistoryStatus+"'").Scan(&name, &value) == nil {
		return true
	}
	var n int64
	return db.QueryRowContext(ctx, historyMetricsSQL).Scan(&n) == nil
}

// clockEvery is how often the primary's clock offset is measured again for
// heartbeat lag: clocks drift by microseconds a minute.
const clockEvery = time.Minute

// clockMaxAge bounds how long an offset is used while the primary cannot be
// read to measure it again: past it, heartbeat lag is unknown, and apply
// holds, rather than trust a clock that may have been stepped since.
const clockMaxAge = 5 * clockEvery

// reading is what one check found, before it is judged against the limits.
type reading struct {
	at       time.Time
	replicas []replicaReading

	primaryErr error            // SHOW GLOBAL STATUS failed
	status     map[string]int64 // lower-case name → value
	bad        map[string]string
	history    int64 // -1: not read
	historyErr error
}

// replicaReading is one replica's lag, or why it is not known.
type replicaReading struct {
	name    string
	lag     time.Duration
	known   bool
	stopped string // replication not running (lag NULL): what the replica says
	err     error  // could not be read
}

// replica is a watched replica and what the throttler learned of it.
type replica struct {
	Replica
	mu       sync.Mutex
	useSlave bool // the server does not know SHOW REPLICA STATUS
}

// primaryClock is the primary's server_id and how far its clock is from
// ours, for heartbeat lag.
type primaryClock struct {
	serverID   int64
	offset     time.Duration // primary time - local time
	measuredAt time.Time
}

// read takes one reading of every configured signal, concurrently: its
// duration is that of the slowest server, bounded by the read timeout.
func (t *Throttler) read(ctx context.Context, lim limits) *reading {
	r := &reading{history: -1}
	names := lim.statusNames()
	var clock *primaryClock
	var clockErr error
	if t.heartbeat != "" && len(t.replicas) > 0 {
		clock, clockErr = t.primaryClock(ctx)
	}
	var wg sync.WaitGroup
	if len(names) > 0 || lim.maxHistory > 0 {
		wg.Go(func() { t.readPrimary(ctx, r, names, lim.maxHistory > 0) })
	}
	r.replicas = make([]replicaReading, len(t.replicas))
	for i, rep := range t.replicas {
		wg.Go(func() {
			rr := replicaReading{name: rep.Name}
			switch {
			case t.heartbeat != "" && clockErr != nil:
				rr.err = fmt.Errorf("primary clock for heartbeat lag: %w", clockErr)
			case t.heartbeat != "":
				t.readHeartbeat(ctx, rep, clock, &rr)
			default:
				t.readSlaveStatus(ctx, rep, &rr)
			}
			r.replicas[i] = rr
		})
	}
	wg.Wait()
	r.at = time.Now()
	return r
}

// readPrimary reads the status variables of the load thresholds and the
// history length in one SHOW GLOBAL STATUS; where the history length is not
// a status variable, from INNODB_METRICS.
func (t *Throttler) readPrimary(ctx context.Context, r *reading, names []string, history bool) {
	ctx, cancel := context.WithTimeout(ctx, t.cfg.ReadTimeout)
	defer cancel()
	fromMetrics := t.historyFromMetrics()
	if history && !fromMetrics {
		names = append(names, HistoryStatus)
	}
	if len(names) > 0 {
		vals, err := showStatus(ctx, t.cfg.Primary, names)
		if err != nil {
			r.primaryErr = readErr(ctx, err, t.cfg.ReadTimeout)
			return
		}
		r.status, r.bad = make(map[string]int64, len(names)), map[string]string{}
		for _, n := range names {
			k := strings.ToLower(n)
			v, ok := vals[k]
			if !ok {
				if history && n == HistoryStatus {
					// MySQL has no such variable: from now on read the
					// metrics table, and now too.
					t.setHistoryFromMetrics()
					fromMetrics = true
					continue
				}
				r.bad[k] = "no such status variable"
				continue
			}
			i, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				r.bad[k] = fmt.Sprintf("value %q is not a number", v)
				continue
			}
			r.status[k] = i
		}
		if history && !fromMetrics {
			if v, ok := r.status[strings.ToLower(HistoryStatus)]; ok {
				r.history = v
			} else {
				r.historyErr = errors.New(r.bad[strings.ToLower(HistoryStatus)])
			}
		}
	}
	if history && fromMetrics {
		var n sql.NullInt64
		err := t.cfg.Primary.QueryRowContext(ctx, historyMetricsSQL).Scan(&n)
		switch {
		case errors.Is(err, sql.ErrNoRows) || err == nil && !n.Valid:
			r.historyErr = errors.New("information_schema.INNODB_METRICS has no trx_rseg_history_len")
		case err != nil:
			r.historyErr = fmt.Errorf("information_schema.INNODB_METRICS: %w", readErr(ctx, err, t.cfg.ReadTimeout))
		default:
			r.history = n.Int64
		}
	}
}

func (t *Throttler) historyFromMetrics() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.metricsHistory
}

func (t *Throttler) setHistoryFromMetrics() {
	t.mu.Lock()
	t.metricsHistory = true
	t.mu.Unlock()
}

// showStatus runs one SHOW GLOBAL STATUS for names (already validated:
// letters, digits and _ only) and returns lower-case name → value.
func showStatus(ctx context.Context, db *sql.DB, names []string) (map[string]string, error) {
	quoted := make([]string, len(names))
	for i, n := range names {
		quoted[i] = "'" + n + "'"
	}
	// Inlined rather than bound: one round trip whether or not the DSN
	// interpolates parameters, and SHOW cannot always be prepared.
	rows, err := db.QueryContext(ctx, "SHOW GLOBAL STATUS WHERE Variable_name IN ("+strings.Join(quoted, ",")+")")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make(map[string]string, len(names))
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return nil, err
		}
		out[strings.ToLower(k)] = v
	}
	return out, rows.Err()
}

// readSlaveStatus reads Seconds_Behind_Master. Of several replication
// channels (MySQL), the worst counts.
func (t *Throttler) readSlaveStatus(ctx context.Context, rep *replica, rr *replicaReading) {
	ctx, cancel := context.WithTimeout(ctx, t.cfg.ReadTimeout)
	defer cancel()
	rows, err := queryReplicaStatus(ctx, rep)
	if err != nil {
		rr.err = readErr(ctx, err, t.cfg.ReadTimeout)
		return
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		rr.err = readErr(ctx, err, t.cfg.ReadTimeout)
		return
	}
	idx := func(names ...string) int {
		for i, c := range cols {
			for _, n := range names {
				if strings.EqualFold(c, n) {
					return i
				}
			}
		}
		return -1
	}
	iLag := idx("Seconds_Behind_Master", "Seconds_Behind_Source")
	iSQL := idx("Slave_SQL_Running", "Replica_SQL_Running")
	iIO := idx("Slave_IO_Running", "Replica_IO_Running")
	iSQLErr, iIOErr := idx("Last_SQL_Error"), idx("Last_IO_Error")
	if iLag < 0 {
		rr.err = errors.New("SHOW SLAVE STATUS has no Seconds_Behind_Master column")
		return
	}
	vals := make([]sql.NullString, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	get := func(i int) string {
		if i < 0 {
			return ""
		}
		return vals[i].String
	}
	n := 0
	for rows.Next() {
		n++
		if err := rows.Scan(ptrs...); err != nil {
			rr.err = readErr(ctx, err, t.cfg.ReadTimeout)
			return
		}
		if !vals[iLag].Valid {
			desc := fmt.Sprintf("Slave_SQL_Running=%s, Slave_IO_Running=%s", orUnknown(get(iSQL)), orUnknown(get(iIO)))
			if e := get(iSQLErr); e != "" {
				desc += ", Last_SQL_Error: " + oneLine(e)
			} else if e := get(iIOErr); e != "" {
				desc += ", Last_IO_Error: " + oneLine(e)
			}
			rr.stopped = desc
			continue
		}
		secs, err := strconv.ParseInt(vals[iLag].String, 10, 64)
		if err != nil {
			rr.err = fmt.Errorf("Seconds_Behind_Master %q is not a number", vals[iLag].String)
			return
		}
		if lag := time.Duration(secs) * time.Second; !rr.known || lag > rr.lag {
			rr.lag, rr.known = lag, true
		}
	}
	if err := rows.Err(); err != nil {
		rr.err = readErr(ctx, err, t.cfg.ReadTimeout)
		return
	}
	if n == 0 {
		rr.err = errors.New("not a replica: SHOW SLAVE STATUS is empty")
	}
}

// queryReplicaStatus runs SHOW REPLICA STATUS, or SHOW SLAVE STATUS on
// servers that only know the old name (MariaDB before 10.5.1, MySQL before
// 8.0.22), remembering which one works.
func queryReplicaStatus(ctx context.Context, rep *replica) (*sql.Rows, error) {
	rep.mu.Lock()
	useSlave := rep.useSlave
	rep.mu.Unlock()
	if !useSlave {
		rows, err := rep.DB.QueryContext(ctx, "SHOW REPLICA STATUS")
		var me *mysql.MySQLError
		if !errors.As(err, &me) || me.Number != 1064 {
			return rows, err
		}
		rep.mu.Lock()
		rep.useSlave = true
		rep.mu.Unlock()
	}
	return rep.DB.QueryContext(ctx, "SHOW SLAVE STATUS")
}

// primaryClock returns the primary's server_id and clock offset, measured
// again every clockEvery.
func (t *Throttler) primaryClock(ctx context.Context) (*primaryClock, error) {
	t.mu.Lock()
	c := t.clock
	t.mu.Unlock()
	if c != nil && time.Since(c.measuredAt) < clockEvery {
		return c, nil
	}
	ctx, cancel := context.WithTimeout(ctx, t.cfg.ReadTimeout)
	defer cancel()
	var id int64
	var now string
	before := time.Now()
	err := t.cfg.Primary.QueryRowContext(ctx, "SELECT @@server_id, UTC_TIMESTAMP(6)").Scan(&id, &now)
	after := time.Now()
	if err != nil {
		if c != nil && time.Since(c.measuredAt) < clockMaxAge {
			// An offset a few minutes old is still good.
			return c, nil
		}
		return nil, readErr(ctx, err, t.cfg.ReadTimeout)
	}
	pt, err := parseUTC(now)
	if err != nil {
		return nil, err
	}
	mid := before.Add(after.Sub(before) / 2)
	c = &primaryClock{serverID: id, offset: pt.Sub(mid), measuredAt: after}
	t.mu.Lock()
	t.clock = c
	t.mu.Unlock()
	return c, nil
}

// readHeartbeat reads the primary's heartbeat row on a replica: lag is the
// primary's time now minus the time the row says it was written.
func (t *Throttler) readHeartbeat(ctx context.Context, rep *replica, clock *primaryClock, rr *replicaReading) {
	ctx, cancel := context.WithTimeout(ctx, t.cfg.ReadTimeout)
	defer cancel()
	var ts any
	err := rep.DB.QueryRowContext(ctx, fmt.Sprintf("SELECT ts FROM %s WHERE server_id = %d", t.heartbeat, clock.serverID)).Scan(&ts)
	if errors.Is(err, sql.ErrNoRows) {
		rr.err = fmt.Errorf("no heartbeat row for the primary (server_id %d) in %s", clock.serverID, t.cfg.HeartbeatTable)
		return
	}
	if err != nil {
		rr.err = readErr(ctx, err, t.cfg.ReadTimeout)
		return
	}
	var at time.Time
	switch v := ts.(type) {
	case time.Time:
		at = v
	case []byte:
		at, err = parseUTC(string(v))
	case string:
		at, err = parseUTC(v)
	default:
		err = fmt.Errorf("heartbeat ts has type %T", ts)
	}
	if err != nil {
		rr.err = fmt.Errorf("%s: %w", t.cfg.HeartbeatTable, err)
		return
	}
	rr.lag, rr.known = max(0, time.Now().Add(clock.offset).Sub(at)), true
}

// parseUTC reads pt-heartbeat's ts ("2006-01-02T15:04:05.999999") or a
// DATETIME ("2006-01-02 15:04:05.999999") as UTC.
func parseUTC(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, layout := range []string{"2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999", time.RFC3339Nano} {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("cannot read heartbeat time %q (want UTC as YYYY-MM-DDTHH:MM:SS.ffffff)", s)
}

// readErr says that a read timed out plainly, rather than "context deadline
// exceeded" or "invalid connection".
func readErr(ctx context.Context, err error, timeout time.Duration) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("no answer within %s", fmtDur(timeout))
	}
	return err
}

func orUnknown(s string) string {
	if s == "" {
		return "?"
	}
	return s
}

// oneLine folds white space and bounds the length of a server's message.
func oneLine(s string) string {
	s = logging.OneLine(s)
	if len(s) > 160 {
		s = s[:157] + "..."
	}
	return s
}
